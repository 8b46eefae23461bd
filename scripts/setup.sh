#!/usr/bin/env bash
# Set-up for a fresh machine that has only Node and npm: obtain the pinned pnpm, install, build.
# Idempotent and quick when everything is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."
want=$(node -p "require('./package.json').packageManager.split('@')[1]")
if [ "$(pnpm --version 2>/dev/null || true)" != "$want" ]; then
  echo "setup: installing pnpm $want with npm" >&2
  npm install --global --no-fund --no-audit "pnpm@$want" >&2
fi
if [ -n "${CI:-}" ]; then
  pnpm install --frozen-lockfile --reporter=append-only >&2
else
  pnpm install --reporter=append-only >&2
fi
pnpm run build >&2
