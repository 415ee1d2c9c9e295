#!/usr/bin/env bash
# Smoke test of what a user does first, with whatever `node` is on PATH: `npm start` builds, runs
# the daemon with its embedded default config, the web and admin listeners answer /health, and
# SIGTERM stops it with exit status 0. Every listener of the default is moved to a free port on
# 127.0.0.1 and the data folder (local CA) to a temporary one, so that it runs beside anything.
# CI runs it on the system's Node (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
npm_pid=
cleanup() {
  if [ -n "$npm_pid" ] && kill -0 "$npm_pid" 2>/dev/null; then
    [ -s "$tmp/pid" ] && kill -KILL "$(cat "$tmp/pid")" 2>/dev/null || true
    kill -KILL "$npm_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "smoke-start: $*" >&2
  sed 's/^/  | /' "$tmp/out" >&2 || true
  exit 1
}

export SWITCHYARD_DATA_DIR="$tmp/data"
any=127.0.0.1:0
export SWITCHYARD_LISTEN="web=$any,secure=$any,echo-tcp=$any,echo-udp=$any,files-tcp=$any,chat-tcp=$any,admin=$any"

echo "smoke-start: npm start on node $(node --version)"
npm start -- --pid-file "$tmp/pid" >"$tmp/out" 2>&1 &
npm_pid=$!

# npm start compiles first: give it time on a busy machine.
for _ in $(seq 1 360); do
  grep -q 'is running' "$tmp/out" && [ -s "$tmp/pid" ] && break
  kill -0 "$npm_pid" 2>/dev/null || fail "npm start exited before the daemon ran"
  sleep 0.5
done
grep -q 'is running' "$tmp/out" || fail "no banner after 180 s"

url_of() { awk -v n="$1" '$1 == n { print $3; exit }' "$tmp/out"; }
for name in web admin; do
  url=$(url_of "$name")
  [ -n "$url" ] || fail "the banner names no $name listener"
  body=$(curl -fsS --max-time 10 "${url}health") || fail "GET ${url}health failed"
  echo "smoke-start: $name ${url}health: $body"
done

kill -TERM "$(cat "$tmp/pid")"
status=0
wait "$npm_pid" || status=$?
npm_pid=
[ "$status" -eq 0 ] || fail "npm start exited with status $status after SIGTERM"
echo "smoke-start: stopped cleanly"
