#!/usr/bin/env bash
# Public instrument drivers against the simulated instruments: QCoDeS, PyMeasure and plain PyVISA
# (PyVISA-py, no vendor VISA) drive each personality they have a driver for, over its TCP socket
# and through the simulated Prologix GPIB-ETHERNET (tests/drivers/drive.py says what each does).
# Exits non-zero if any driver fails; each failure prints the driver, the personality and the
# last exchanges. Run from anywhere: `bash tests/drivers/run.sh`. The frameworks are installed,
# pinned, into a venv of their own under ~/.cache/tsagent-tests (TSAGENT_DRIVERS_VENV to move it);
# TSAGENT=path/to/tsagent uses that binary instead of building the debug one.
set -euo pipefail
cd "$(dirname "$0")/../.."

# Pinned: the newest of each that installs on Debian 12's Python 3.11 (QCoDeS 0.59 and later need
# Python 3.12). numpy is QCoDeS's and PyMeasure's; pinned so a new release cannot change a run.
pins=(qcodes==0.58.0 pymeasure==0.16.0 pyvisa==1.16.2 pyvisa-py==0.8.1 numpy==2.4.6)

venv="${TSAGENT_DRIVERS_VENV:-$HOME/.cache/tsagent-tests/drivers-venv}"
stamp="$venv/.pins"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "${pins[*]}" ]; then
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    echo "tests/drivers: python3 cannot make a virtual environment;" \
      "install it with: sudo apt-get install python3-venv" >&2
    exit 1
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}"
  echo "${pins[*]}" >"$stamp"
fi

if [ -n "${TSAGENT:-}" ]; then
  tsagent="$TSAGENT"
else
  cargo build --quiet --bin tsagent
  tsagent="$(cargo metadata --format-version 1 --no-deps |
    "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/tsagent"
fi

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Starts `tsagent sim --tcp 127.0.0.1:0 ARGS…` and sets `port` to the one it reports on its first
# line (not a command substitution: the simulator must stay this shell's child, for the cleanup).
serve() {
  local out="$work/sim.${#pids[@]}"
  "$tsagent" sim --tcp 127.0.0.1:0 "$@" >"$out" 2>"$out.err" &
  pids+=($!)
  local pid=$! line=""
  for _ in $(seq 100); do
    line="$(head -n1 "$out")"
    [ -n "$line" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  case "$line" in
    "tcp 127.0.0.1:"*) port="${line##*:}" ;;
    *)
      echo "tests/drivers: tsagent sim $* did not start:" >&2
      cat "$out.err" >&2
      exit 1
      ;;
  esac
}

args=()
port=""
for p in keysight-34465a keysight-34470a keithley-dmm6500 keysight-3458a; do
  serve --personality "$p"
  args+=(--tcp "$p=$port")
done
bus="22:keysight-3458a,10:keysight-34465a,16:keithley-dmm6500"
serve --prologix "${bus//:/=}"
args+=(--prologix "$port=$bus")

"$venv/bin/python" tests/drivers/drive.py "${args[@]}"
