#!/usr/bin/env bash
# Build the book website into _build/html and open it: `bash tools/book.sh`.
#   --strict   rebuild every page and fail on any warning or failing cell (what CI runs)
#   --no-open  only build
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/env.sh
strict=0; open=1
for arg in "$@"; do
  case "$arg" in
    --strict) strict=1 ;;
    --no-open) open=0 ;;
    *) echo "unknown option $arg (expected --strict or --no-open)" >&2; exit 2 ;;
  esac
done
python tools/export.py
if [ "$strict" = 1 ]; then
  timeout 3000 jupyter-book build . --all -W --keep-going
else
  timeout 3000 jupyter-book build .
fi
index="$PWD/_build/html/index.html"
echo "The book is at file://$index"
if [ "$open" = 1 ] && [ -z "${CI:-}" ]; then
  python -m webbrowser -t "file://$index" >/dev/null 2>&1 || true
fi
