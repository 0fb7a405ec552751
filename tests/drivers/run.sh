#!/usr/bin/env bash
# Public instrument drivers against the simulated instruments: QCoDeS, PyMeasure, the hp3458a
# package and plain PyVISA (PyVISA-py, no vendor VISA) drive each personality they have a driver
# for, over its TCP socket and through the simulated Prologix GPIB-ETHERNET
# (tests/drivers/drive.py says what each does).
# Exits non-zero if any driver fails; each failure prints the driver, the personality and the
# last exchanges. Run from anywhere: `bash tests/drivers/run.sh [FILTER]` (FILTER: only the cases
# whose `driver | personality | transport` label contains it). The frameworks are installed,
# pinned, into a venv of their own under ~/.cache/tsagent-tests (TSAGENT_DRIVERS_VENV to move it);
# TSAGENT=path/to/tsagent uses that binary instead of building the debug one.
set -euo pipefail
cd "$(dirname "$0")/../.."

# Pinned, with everything they pull in, in tests/drivers/requirements.txt: QCoDeS 0.58.0,
# PyMeasure 0.16.0, hp3458a 0.1.1, PyVISA 1.16.2 and PyVISA-py 0.8.1, the newest of each that
# installs on Debian 12's Python 3.11 (QCoDeS 0.59 and later need Python 3.12).
requirements=tests/drivers/requirements.txt
venv="${TSAGENT_DRIVERS_VENV:-$HOME/.cache/tsagent-tests/drivers-venv}"
stamp="$venv/requirements.txt"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$requirements" "$stamp"; then
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    echo "tests/drivers: python3 cannot make a virtual environment;" \
      "install it with: sudo apt-get install python3-venv" >&2
    exit 1
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$requirements"
  cp "$requirements" "$stamp"
fi

if [ -n "${TSAGENT:-}" ]; then
  tsagent="$TSAGENT"
else
  cargo build --quiet --bin tsagent
  tsagent="$(cargo metadata --format-version 1 --no-deps |
    "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/tsagent"
fi

"$venv/bin/python" tests/drivers/drive.py --tsagent "$tsagent" "$@"
