#!/usr/bin/env bash
# P8: `tsagent analyze` of 1,000,000 readings next to the same work in Python (numpy's lstsq and
# allantools), each analysis a whole process reading the same CSV file, rounds interleaved, wall
# time and peak RSS (the child's ru_maxrss from wait4) per process. Both print their results as
# JSON and the script checks that they agree before it reports any figure.
#
#   usage: benches/p8_analyze.sh [ROUNDS] [ROWS]
#   TSA: the tsagent binary (default: this tree's target/release/tsagent; build it first with
#        `cargo build --release`)
#   PYTHON: a Python with numpy==2.4.6 and allantools==2024.6 (default: made in target/p8-venv)
set -euo pipefail
R=${1:-5}
N=${2:-1000000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TSA=${TSA:-$ROOT/target/release/tsagent}
if [ -z "${PYTHON:-}" ]; then
  PYTHON=$ROOT/target/p8-venv/bin/python
  if [ ! -x "$PYTHON" ]; then
    python3 -m venv "$ROOT/target/p8-venv"
    "$ROOT/target/p8-venv/bin/pip" install -q numpy==2.4.6 allantools==2024.6
  fi
fi
W=$ROOT/target/p8
mkdir -p "$W"
DATA=$W/readings-$N.csv
if [ ! -s "$DATA" ]; then
  # A 10 V standard read once a minute for two years: drift 2e-8 V/day, temperature coefficient
  # 5e-8 V/K, pressure coefficient -1e-9 V/hPa, white noise 1e-7 V; and the fractional frequency
  # of an oscillator (white FM plus a little random walk) for the Allan deviations.
  "$PYTHON" - "$N" "$DATA" <<'PY'
import sys
import numpy as np
n, path = int(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(20261203)
days = np.arange(n) / 1440.0
temp = 23.0 + 0.3 * np.sin(2 * np.pi * days) + 0.05 * rng.standard_normal(n)
press = 1013.25 + 8.0 * np.sin(2 * np.pi * days / 7.3) + 0.2 * rng.standard_normal(n)
value = 10.0 + 2e-8 * days + 5e-8 * (temp - 23.0) - 1e-9 * (press - 1013.25) + 1e-7 * rng.standard_normal(n)
frac = 1e-11 * rng.standard_normal(n) + np.cumsum(1e-14 * rng.standard_normal(n))
with open(path, "w") as f:
    f.write("days,temp,press,value,frac\n")
    for row in zip(days, temp, press, value, frac):
        f.write(",".join(repr(float(v)) for v in row) + "\n")
PY
fi

exec "$PYTHON" - "$R" "$TSA" "$PYTHON" "$ROOT/benches/p8_peer.py" "$DATA" <<'PY'
import json, os, statistics, subprocess, sys, time
rounds, tsa, python, peer, data = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
jobs = {
    "summary": (
        [tsa, "analyze", "summary", "--csv", data, "--column", "value", "--json"],
        [python, peer, "summary", data, "value"],
    ),
    "fit, 2 regressors": (
        [tsa, "analyze", "fit", "--csv", data, "--y", "value", "--x", "days", "--x", "temp", "--json"],
        [python, peer, "fit", data, "value", "days", "temp"],
    ),
    "allan, octaves": (
        [tsa, "analyze", "allan", "--csv", data, "--column", "frac", "--tau0", "60", "--json"],
        [python, peer, "allan", data, "frac", "60"],
    ),
}

def run(cmd):
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        sys.exit(f"{cmd[:3]} failed: {status}")
    return wall, ru.ru_maxrss / 1024.0, json.loads(out)

def close(a, b, rel):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)

def agree(name, t, p):
    if name == "summary":
        return all(close(t[k], p[k], 1e-9) for k in ("mean", "s", "u_mean")) and t["n"] == p["n"]
    if name.startswith("fit"):
        return all(close(a["value"], b["value"], 1e-7) and close(a["u"], b["u"], 1e-7)
                   for a, b in zip(t["coefficients"], p["coefficients"])) and close(t["s_residual"], p["s_residual"], 1e-9)
    ours = {round(q["tau"], 6): q for q in t["points"]}
    common = [q for q in p["points"] if round(q["tau"], 6) in ours]
    return len(common) >= 10 and all(
        close(ours[round(q["tau"], 6)][k], q[k], 1e-7) for q in common for k in ("adev", "oadev")
    )

results = {name: {"tsagent": [], "python": []} for name in jobs}
for r in range(rounds):
    for name, (ours, theirs) in jobs.items():
        order = [("tsagent", ours), ("python", theirs)] if r % 2 == 0 else [("python", theirs), ("tsagent", ours)]
        outs = {}
        for who, cmd in order:
            wall, rss, out = run(cmd)
            results[name][who].append((wall, rss))
            outs[who] = out
        if not agree(name, outs["tsagent"], outs["python"]):
            sys.exit(f"{name}: tsagent and Python disagree:\n{outs['tsagent']}\n{outs['python']}")

print(f"{rounds} rounds, {data}")
print("| analysis | tsagent wall (median, range) | Python wall (median, range) | speed-up (median of rounds) | tsagent peak RSS | Python peak RSS |")
print("|---|---:|---:|---:|---:|---:|")
for name, r in results.items():
    tw = [w for w, _ in r["tsagent"]]
    pw = [w for w, _ in r["python"]]
    ratio = statistics.median(p / t for t, p in zip(tw, pw))
    trss = max(m for _, m in r["tsagent"])
    prss = max(m for _, m in r["python"])
    print(f"| {name} | {statistics.median(tw):.3f} s ({min(tw):.3f}–{max(tw):.3f}) | "
          f"{statistics.median(pw):.3f} s ({min(pw):.3f}–{max(pw):.3f}) | {ratio:.1f}× | "
          f"{trss:.1f} MB | {prss:.1f} MB |")
PY
