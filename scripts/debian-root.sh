#!/usr/bin/env bash
# Builds (once) the Debian trixie root used to test against newer systemd (257: OpenFile=, Type=notify-reload).
# About a minute and ~400 MB, cached outside the repository. Needs root and Debian's package mirror.
set -euo pipefail
root=${SDNOTIFY_DEBIAN_ROOT:-/var/cache/sdnotify/trixie}
if [ -x "$root/lib/systemd/systemd" ] && [ -x "$root/usr/bin/node" ]; then
  echo "debian-root: $root is ready"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "debian-root: needs root (debootstrap); the systemd 257 tests will be skipped" >&2
  exit 0
fi
if ! command -v debootstrap >/dev/null; then
  echo "debian-root: installing debootstrap" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
fi
mkdir -p "$(dirname "$root")"
tmp="$root.partial"
rm -rf "$tmp"
echo "debian-root: debootstrap trixie into $root (about a minute)" >&2
debootstrap --variant=minbase --include=systemd,nodejs trixie "$tmp" >"$tmp.log" 2>&1 || {
  tail -20 "$tmp.log" >&2
  exit 1
}
mv "$tmp" "$root"
echo "debian-root: $root is ready"
