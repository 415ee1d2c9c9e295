#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the benchmarks need: nginx (a peer, and the proxy
# benchmark's upstream), haproxy (a proxy peer), caddy (a peer of static, proxy, tls, h2 and
# grpc), wrk (the HTTP/1.1 load generator), nghttp2-client (h2load, the HTTP/2 and gRPC load
# generator), util-linux (taskset). Idempotent: does nothing when all tools are present.
# (CI installs the same tools through scripts/install-system-deps.sh but does not run benchmarks.)
# Also the npm package uws-pack (uWebSockets.js), a server of the ws benchmark, into node_modules.
set -euo pipefail
cd "$(dirname "$0")/.."

# uws-pack is not a devDependency: its package.json declares engines node >= 22, yet it ships
# builds for Node 18 to 22 (it loads on Node 20, where the benchmarks were measured), so as a
# devDependency every `npm install` on Node 20 warned EBADENGINE about a package only this
# benchmark uses. Installed without saving: `npm install` and `npm ci` remove it again; run this
# script again to bring it back (the ws benchmark's uWS row says so when it is missing).
install_uws_pack() {
  if [ -f node_modules/uws-pack/package.json ]; then
    echo "bench/install.sh: uws-pack is installed"
    return
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "bench/install.sh: npm not found; the ws benchmark runs without its uWS row" >&2
    return
  fi
  echo "bench/install.sh: npm install --no-save uws-pack@20.0.8 (on Node 20, npm's EBADENGINE warning about it is expected)"
  npm install --no-save --no-audit --no-fund uws-pack@20.0.8
}
install_uws_pack

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  need+=(nginx-light)
fi
if ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ]; then
  need+=(haproxy)
fi
command -v caddy >/dev/null 2>&1 || need+=(caddy)
command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)

if [ ${#need[@]} -eq 0 ]; then
  echo "bench/install.sh: wrk, taskset, nginx, haproxy, caddy and h2load are already installed"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "bench/install.sh: apt-get not found; install these yourself: ${need[*]}" >&2
  exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "bench/install.sh: not root and no sudo; install these yourself: ${need[*]}" >&2
    exit 1
  fi
fi

echo "bench/install.sh: installing ${need[*]}"
"${SUDO[@]}" apt-get update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
echo "bench/install.sh: done"
