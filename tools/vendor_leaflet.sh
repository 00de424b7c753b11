#!/usr/bin/env bash
# Vendor Leaflet from its npm package into dispatch/http/static/vendor/leaflet/.
#
# Why vendored: the status page and the live-link pages must never load code from a CDN
# (PRODUCT.md §3), so the service serves Leaflet itself. This script is the only way the
# files get there, so the copy is reproducible and checked:
#   1. `npm pack` fetches the exact tarball the registry publishes for the version;
#   2. its sha512 must equal the registry's `dist.integrity` for that version, and, when the
#      committed VERSION file already names this version, the integrity recorded there too
#      (so a changed tarball behind an unchanged version number is refused);
#   3. only the built files the pages need are copied (leaflet.js, leaflet.css, images/,
#      LICENSE), replacing the old copy whole, and VERSION records what was taken.
#
# Usage: tools/vendor_leaflet.sh [VERSION]    (default 1.9.4, the latest 1.9.x)
# Needs: npm, tar, openssl. Run from anywhere; it writes into this repository only.
set -euo pipefail

version="${1:-1.9.4}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/dispatch/http/static/vendor/leaflet"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$work"
# --silent leaves only the tarball's file name on stdout.
tarball="$(npm pack "leaflet@$version" --silent)"
expected="$(npm view "leaflet@$version" dist.integrity)"
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | openssl base64 -A)"

if [[ "$actual" != "$expected" ]]; then
  echo "integrity mismatch for $tarball: registry says $expected, tarball is $actual" >&2
  exit 1
fi
if [[ -f "$dest/VERSION" ]] && grep -qx "version: $version" "$dest/VERSION"; then
  recorded="$(sed -n 's/^integrity: //p' "$dest/VERSION")"
  if [[ "$recorded" != "$actual" ]]; then
    echo "integrity of leaflet $version changed: VERSION records $recorded, tarball is $actual" >&2
    exit 1
  fi
fi

tar -xzf "$tarball"
rm -rf "$dest"
mkdir -p "$dest/images"
cp package/dist/leaflet.js package/dist/leaflet.css "$dest/"
cp package/dist/images/*.png "$dest/images/"
cp package/LICENSE "$dest/LICENSE"
cat >"$dest/VERSION" <<EOF
name: leaflet
version: $version
tarball: $tarball
integrity: $actual
source: npm registry, \`npm pack leaflet@$version\`, written by tools/vendor_leaflet.sh
EOF

echo "vendored leaflet $version ($tarball, $actual) into ${dest#"$root"/}"
