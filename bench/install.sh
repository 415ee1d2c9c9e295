#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages the benchmarks need: nginx (a peer, and the proxy
# benchmark's upstream), haproxy (a proxy peer), wrk (the load generator), util-linux (taskset).
# Idempotent: does nothing when all tools are present.
# Used by .ci/run (CI installs the tools but does not run benchmarks).
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

if [ ${#need[@]} -eq 0 ]; then
  echo "bench/install.sh: wrk, taskset, nginx and haproxy are already installed"
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
