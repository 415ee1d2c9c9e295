#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the benchmarks need: nginx (a peer, and the proxy
# benchmark's upstream), haproxy (a proxy peer), caddy (a peer of static, proxy, tls, h2 and
# grpc), wrk (the HTTP/1.1 load generator), nghttp2-client (h2load, the HTTP/2 and gRPC load
# generator), util-linux (taskset). Idempotent: does nothing when all tools are present.
# (CI installs the same tools through scripts/install-system-deps.sh but does not run benchmarks.)
set -euo pipefail

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
