#!/usr/bin/env bash
# Build the book website into _build/html and open it: `bash tools/book.sh`.
#   --strict      rebuild every page and fail on any warning or failing cell (what CI runs)
#   --no-open     only build
#   --no-execute  show the chapters' stored outputs instead of running them (quick layout checks;
#                 chapters are committed without outputs, so pages then show no plots)
# Chapters run in cache mode: each executed chapter is kept in _build/.jupyter_cache and reused
# until its code cells change (tools/test.sh checks the chapters from there when CI asks it to).
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/env.sh
strict=0; open=1; config=_config.yml; execute=1
for arg in "$@"; do
  case "$arg" in
    --strict) strict=1 ;;
    --no-open) open=0 ;;
    --no-execute)
      execute=0
      mkdir -p _build
      config=_build/_config.no-execute.yml
      sed 's/^\(  execute_notebooks:\).*/\1 "off"/' _config.yml > "$config"
      grep -q 'execute_notebooks: "off"' "$config" || { echo "could not switch execution off in $config" >&2; exit 2; } ;;
    *) echo "unknown option $arg (expected --strict, --no-open or --no-execute)" >&2; exit 2 ;;
  esac
done
python tools/export.py
if [ "$strict" = 1 ]; then
  timeout 3000 jupyter-book build . --config "$config" --all -W --keep-going
else
  timeout 3000 jupyter-book build . --config "$config"
fi
# the browser test skips a site whose chapters were not executed (it looks for this marker)
if [ "$execute" = 0 ]; then touch _build/html/.no-execute; else rm -f _build/html/.no-execute; fi
index="$PWD/_build/html/index.html"
echo "The book is at file://$index"
# a plain build exits 0 when a cell fails: say which chapters failed, loudly, and exit 1
status=0
if [ "$execute" = 1 ]; then python tools/executed.py _build/.jupyter_cache || status=1; fi
if [ "$open" = 1 ] && [ -z "${CI:-}" ]; then
  python -m webbrowser -t "file://$index" >/dev/null 2>&1 || true
fi
exit $status
