#!/usr/bin/env bash
# Vendor the uPlot charting library (npm package "uplot") into the dashboard's
# embedded static assets, so no CDN is needed at run time.
#
# Usage: scripts/vendor-uplot.sh [VERSION]     (normally via `make vendor`)
set -euo pipefail

PKG="uplot"
DEFAULT_VERSION="1.6.32"
VERSION="${1:-$DEFAULT_VERSION}"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
DEST="$ROOT/server/web/static/vendor/uplot"

command -v npm >/dev/null 2>&1 || { echo "vendor-uplot: npm not found in PATH" >&2; exit 1; }

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

echo "vendor-uplot: fetching $PKG@$VERSION" >&2
# npm pack prints the tarball file name as the last line of stdout.
TARBALL="$(cd "$TMP" && npm pack --silent "$PKG@$VERSION" | tail -n 1)"
[ -f "$TMP/$TARBALL" ] || { echo "vendor-uplot: npm pack produced no tarball" >&2; exit 1; }

# Version actually packed (resolves ranges/tags such as "1.6" or "latest").
tar -xzf "$TMP/$TARBALL" -C "$TMP"
RESOLVED="$(sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$TMP/package/package.json" | head -n 1)"
[ -n "$RESOLVED" ] || { echo "vendor-uplot: cannot read version from package.json" >&2; exit 1; }

INTEGRITY="$(npm view "$PKG@$RESOLVED" dist.integrity)"
SHASUM="$(npm view "$PKG@$RESOLVED" dist.shasum)"
[ -n "$INTEGRITY" ] && [ -n "$SHASUM" ] || { echo "vendor-uplot: missing dist.integrity/dist.shasum" >&2; exit 1; }

# Verify the downloaded tarball against the registry's sha1 shasum.
if command -v sha1sum >/dev/null 2>&1; then
  GOT="$(sha1sum "$TMP/$TARBALL" | cut -d' ' -f1)"
  [ "$GOT" = "$SHASUM" ] || { echo "vendor-uplot: shasum mismatch ($GOT != $SHASUM)" >&2; exit 1; }
fi

FILES=(dist/uPlot.iife.min.js dist/uPlot.min.css LICENSE)
for f in "${FILES[@]}"; do
  [ -f "$TMP/package/$f" ] || { echo "vendor-uplot: $f missing from $PKG@$RESOLVED" >&2; exit 1; }
done

mkdir -p "$DEST"
for f in "${FILES[@]}"; do
  cp "$TMP/package/$f" "$DEST/$(basename "$f")"
done
printf '%s\n' "$RESOLVED" > "$DEST/VERSION"

cat > "$DEST/SOURCE.md" <<MD
# uPlot (vendored)

| Field     | Value |
|-----------|-------|
| Package   | \`$PKG\` (npm) — https://www.npmjs.com/package/$PKG |
| Version   | $RESOLVED |
| Integrity | \`$INTEGRITY\` |
| Shasum    | \`$SHASUM\` (sha1 of the npm tarball) |
| Licence   | MIT (see \`LICENSE\`) |
| Upstream  | https://github.com/leeoniya/uPlot |

Files copied verbatim from the package tarball:

- \`dist/uPlot.iife.min.js\` → \`uPlot.iife.min.js\`
- \`dist/uPlot.min.css\` → \`uPlot.min.css\`
- \`LICENSE\` → \`LICENSE\`

Do not edit these files by hand. To refresh, run \`make vendor\`
(i.e. \`scripts/vendor-uplot.sh [VERSION]\`, default $DEFAULT_VERSION).
MD

echo "vendor-uplot: vendored $PKG@$RESOLVED into ${DEST#"$ROOT"/}" >&2
