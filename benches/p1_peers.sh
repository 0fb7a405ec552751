#!/usr/bin/env bash
# P1 against the peers: `tsagent measure` of N readings and the PyVISA + Python sqlite3 loop a lab
# would write, against the same simulated DMM process, on the same disk, rounds interleaved. The
# method is ../shared/bench/side_by_side_p1.sh's (same sequence, same peer script, tsagent's rate
# from its own reading timestamps); this one also takes several tsagent builds, so a change is
# measured against the build before it in the same run, and it prints each round's ratio.
#
#   usage: benches/p1_peers.sh [N] [ROUNDS]
#   TSA="label=path label=path …" (default: this tree's target/release/tsagent)
#   PYTHON: a Python with pyvisa==1.16.2 and pyvisa-py==0.8.1 (default: made in target/peers-venv)
#   PEERS: the folder of peer_pyvisa_sqlite.py (default: ../shared/bench)
#
# Needs the sqlite3 command-line shell for the rate, as the shared script does.
set -euo pipefail
N=${1:-2000}
R=${2:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TSA=${TSA:-"tsagent=$ROOT/target/release/tsagent"}
PEERS=${PEERS:-$ROOT/../shared/bench}
if [ -z "${PYTHON:-}" ]; then
  PYTHON=$ROOT/target/peers-venv/bin/python
  if [ ! -x "$PYTHON" ]; then
    python3 -m venv "$ROOT/target/peers-venv"
    "$ROOT/target/peers-venv/bin/pip" install -q pyvisa==1.16.2 pyvisa-py==0.8.1
  fi
fi
command -v sqlite3 >/dev/null || { echo "needs sqlite3: apt-get install -y sqlite3" >&2; exit 2; }

W=$(mktemp -d)
SIM=
trap '[ -n "$SIM" ] && kill "$SIM" 2>/dev/null; rm -rf "$W"' EXIT
first=${TSA%% *}
"${first#*=}" sim --tcp 127.0.0.1:0 >"$W/sim.out" 2>&1 &
SIM=$!
for _ in $(seq 100); do grep -q tcp "$W/sim.out" && break; sleep 0.1; done
PORT=$(head -1 "$W/sim.out" | grep -o '[0-9]*$')
cat >"$W/lab.toml" <<TOML
[lab]
id = "BENCH"
name = "bench"
[artefact]
id = "TS"
kind = "zener"
serial = "X1"
nominal = 10.0
unit = "V"
[storage]
db = "tsagent.db"
bundles = "bundles"
[signing]
key = "key"
[[instrument]]
name = "dmm"
driver = "generic-scpi-dmm"
resource = "TCPIP::127.0.0.1::$PORT::SOCKET"
[[sequence]]
name = "burst"
[[sequence.step]]
read = { instrument = "dmm", count = $N, interval = "0s", quantity = "voltage", unit = "V" }
TOML

header="round"
for t in $TSA; do header="$header ${t%%=*}"; done
header="$header pyvisa_sqlite3"
for t in $TSA; do header="$header ${t%%=*}/pyvisa"; done
echo "$header"
for r in $(seq "$R"); do
  line="$r"
  rates=()
  for t in $TSA; do
    d=$W/r$r-${t%%=*}
    mkdir -p "$d"
    cp "$W/lab.toml" "$d/"
    (cd "$d" && "${t#*=}" measure --config lab.toml --sequence burst --operator bench >/dev/null)
    rate=$(sqlite3 "$d/tsagent.db" \
      "select printf('%.0f', (count(*)-1)/((max(utc_us)-min(utc_us))/1e6)) from readings")
    rates+=("$rate")
    line="$line $rate"
  done
  "$PYTHON" "$PEERS/peer_pyvisa_sqlite.py" --port "$PORT" --n "$N" --db "$W/r$r-pv.db" >"$W/r$r-pv"
  pv=$(grep -o 'readings_per_s=[0-9.]*' "$W/r$r-pv" | tail -1 | cut -d= -f2)
  line="$line $pv"
  for rate in "${rates[@]}"; do line="$line $(awk -v a="$rate" -v b="$pv" 'BEGIN { printf "%.2f", a / b }')"; done
  echo "$line"
done
