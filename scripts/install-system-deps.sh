#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks use, in one apt-get run:
#   curl, netcat-openbsd  real clients the tests drive (HTTP edge cases, tcp/udp/unix echo)
#   procps                ps/pgrep used by the lifecycle tests
#   nginx-light, wrk      the benchmark peer and load generator (bench/)
#   haproxy               the second peer of the proxy benchmark (bench/proxy.ts)
#   util-linux            taskset, to pin servers and load to separate cores in bench/
#   redis-server          the real Redis the multi-node chat tests start on a free port
#   chromium              headless browser for the chat page test (driven by playwright-core)
#   openssl               self-signed certificates for the wss:// and https:// client tests
#   pebble                the ACME test server the automatic-certificate tests start (test/tls-acme.test.ts)
#   caddy                 the third peer of the TLS benchmark (bench/tls.ts; Debian's 2.6, run by the harness, its service unused)
#   nghttp2-client        nghttp and h2load: the HTTP/2 clients of the h2 tests and the h2 benchmark
#   nmap                  the reference the port scanner's tests compare with (nmap -sT on loopback)
#   socat                 a second real peer for the tcp/udp tools' tests (multicast, socket options)
#   iproute2              ip netns / ip link, for the multicast tests' own network namespace when allowed
# Safe to run again; needs root (or sudo).
set -euo pipefail

packages=(curl netcat-openbsd procps nginx-light haproxy wrk util-linux redis-server chromium openssl pebble caddy nghttp2-client nmap socat iproute2)

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-system-deps: run as root or install sudo" >&2; exit 1; }
  SUDO=(sudo)
fi

"${SUDO[@]}" apt-get update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}"
