# Sourced by tools/book.sh and tools/test.sh: make (or reuse) the project's environment.
# Creates .venv from requirements.txt (exact pins) plus this package in editable mode, and
# reinstalls only when requirements.txt or pyproject.toml change. Needs Python >= 3.10 and pip.
VENV="${MINGPT_VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV ..."
  "$PYTHON" -m venv "$VENV"
fi
want="$(cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)"
if [ "$(cat "$VENV/.installed" 2>/dev/null)" != "$want" ]; then
  echo "installing requirements.txt into $VENV (first time: a few minutes) ..."
  "$VENV/bin/python" -m pip install --quiet -r requirements.txt
  "$VENV/bin/python" -m pip install --quiet --no-deps -e .
  echo "$want" > "$VENV/.installed"
fi
export PATH="$PWD/$VENV/bin:$PATH"
# Offline data for tests and CI: the shared folder beside the checkout, when there is one.
if [ -z "${MINGPT_DATA_DIR:-}" ] && [ -d ../shared/data ]; then
  MINGPT_DATA_DIR="$(cd ../shared/data && pwd)"
  export MINGPT_DATA_DIR
fi
export PYDEVD_DISABLE_FILE_VALIDATION=1  # silences a debugger warning in every kernel
