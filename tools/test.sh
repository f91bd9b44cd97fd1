#!/usr/bin/env bash
# Run every test: `bash tools/test.sh [pytest args]`.
# The package must match a fresh export of the chapters, the chapters must be committed clean,
# then pytest runs the unit tests (tests/), every chapter top to bottom through nbval (book/),
# and the browser test of the built website (tests/test_browser.py; it skips, saying why, when
# there is no built site or no Chromium).
# Two switches, which CI (.ci/run) sets after its site build has executed every chapter once:
#   MINGPT_NBVAL_FROM_CACHE=_build/.jupyter_cache  check the chapters' cells (errors, checked
#       outputs) from that execution instead of running them again (see conftest.py)
#   MINGPT_REQUIRE_BROWSER=1  the browser test fails instead of skipping
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/env.sh
# Tests never need a network: chapter 11 then shows GPT-2 on its offline stand-in.
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
python tools/export.py --check
python tools/notebooks.py check
python -m pytest tests book --nbval-lax --nbval-current-env --nbval-cell-timeout=900 -v "$@"
