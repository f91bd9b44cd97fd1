#!/usr/bin/env bash
# Fetch the JavaScript the website loads from CDNs, for the offline browser test
# (tests/test_browser.py serves these files in place of the CDN URLs):
#   MathJax 3 (math), RequireJS and @jupyter-widgets/html-manager (ipywidgets' saved state).
# Pinned versions, from the npm registry (`npm pack` checks each tarball's integrity), unpacked
# under _build/vendor/NAME. Idempotent: a package already there is not fetched again.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=_build/vendor
packages=(
  "mathjax mathjax@3.2.2"
  "requirejs requirejs@2.3.4"
  "html-manager @jupyter-widgets/html-manager@1.0.6"
)
if ! command -v npm >/dev/null; then
  echo "fetch_js.sh: npm is needed to fetch MathJax and the widget scripts (apt-get install npm)" >&2
  exit 1
fi
mkdir -p "$dest"
for entry in "${packages[@]}"; do
  name=${entry%% *}; spec=${entry#* }
  if [ -f "$dest/$name/.spec" ] && [ "$(cat "$dest/$name/.spec")" = "$spec" ]; then
    continue
  fi
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$spec" >/dev/null)
  rm -rf "${dest:?}/$name"
  mkdir -p "$dest/$name"
  tar -xzf "$tmp"/*.tgz -C "$dest/$name" --strip-components=1
  echo "$spec" > "$dest/$name/.spec"
  rm -rf "$tmp"
  echo "fetched $spec into $dest/$name"
done
