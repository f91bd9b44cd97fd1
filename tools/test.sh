#!/usr/bin/env bash
# Run every test: `bash tools/test.sh [pytest args]`.
# The package must match a fresh export of the chapters, the chapters must be committed clean,
# then pytest runs the unit tests (tests/) and every chapter top to bottom through nbval (book/).
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/env.sh
# Tests never need a network: chapter 11 then shows GPT-2 on its offline stand-in.
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
python tools/export.py --check
python tools/notebooks.py check
python -m pytest tests book --nbval-lax --nbval-current-env --nbval-cell-timeout=900 -v "$@"
