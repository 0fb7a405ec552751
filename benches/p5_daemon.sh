#!/usr/bin/env bash
# P5: the daemon at rest-and-work for DURATION seconds: 4 simulated instruments read once a
# second each, the control API on. Measures RSS (peak and at the end), CPU (% of one core), wake-ups
# per second (context switches of all its threads), and `tsagent status` latency during runs.
# Several builds run side by side in the same window, so the machine's noise hits them alike.
#
#   usage: benches/p5_daemon.sh [DURATION_S]
#   TSA="label=path label=path …" (default: this tree's target/release/tsagent)
#   A label ending in `+page` also turns the status page on ([status] listen) and keeps a page
#   open on it the whole time: a follower of its live events (curl -N /events), and the page
#   itself fetched every 10 s, as a browser left open on the lab PC would.
#   A build without `status` (before the control API) is measured without the latency column.
set -euo pipefail
DURATION=${1:-600}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TSA=${TSA:-"tsagent=$ROOT/target/release/tsagent"}
W=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"' EXIT

lab() { # dir [page port]
  local status=""
  if [ -n "${2:-}" ]; then status=$'[status]\nlisten = "127.0.0.1:'"$2"'"'; fi
  cat >"$1/lab.toml" <<TOML
[lab]
id = "P5"
name = "p5"
[artefact]
id = "TS"
kind = "zener"
serial = "X1"
nominal = 10.0
unit = "V"
[storage]
db = "tsagent.db"
bundles = "bundles"
$status
[[instrument]]
name = "dmm1"
resource = "SIM::PTY::INSTR"
[[instrument]]
name = "dmm2"
resource = "SIM::PTY::INSTR"
[[instrument]]
name = "dmm3"
resource = "SIM::PTY::INSTR"
[[instrument]]
name = "dmm4"
resource = "SIM::PTY::INSTR"
[[sequence]]
name = "monitor"
every = "1s"
[[sequence.step]]
read = { instrument = "dmm1", count = 1, quantity = "voltage", unit = "V" }
[[sequence.step]]
read = { instrument = "dmm2", count = 1, quantity = "voltage", unit = "V" }
[[sequence.step]]
read = { instrument = "dmm3", count = 1, quantity = "voltage", unit = "V" }
[[sequence.step]]
read = { instrument = "dmm4", count = 1, quantity = "voltage", unit = "V" }
TOML
}

ticks() { # pid -> utime+stime of all threads, clock ticks
  awk '{print $14 + $15}' "/proc/$1/stat"
}
switches() { # pid -> context switches of all threads
  cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {s += $2} END {print s}'
}
kb() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }

labels=(); bins=(); pids=(); pages=()
port=18470
for t in $TSA; do
  label=${t%%=*}; bin=${t#*=}; d=$W/$label; mkdir -p "$d"
  page=""
  if [[ $label == *+page ]]; then page=$port; port=$((port + 1)); fi
  lab "$d" "$page"
  (cd "$d" && exec "$bin" run --config lab.toml --log warn) 2>"$d/err" &
  pid=$!; PIDS+=("$pid"); labels+=("$label"); bins+=("$bin"); pids+=("$pid"); pages+=("$page")
done
sleep 5 # start-up (instruments identified) is not the steady state being measured
for i in "${!pids[@]}"; do
  if [ -n "${pages[$i]}" ]; then
    curl -sN "http://127.0.0.1:${pages[$i]}/events" >/dev/null &
    PIDS+=("$!")
  fi
done
declare -A t0 s0
for i in "${!pids[@]}"; do p=${pids[$i]}; t0[$i]=$(ticks "$p"); s0[$i]=$(switches "$p"); done
start=$(date +%s.%N)
declare -A lat
end=$(( $(date +%s) + DURATION ))
while [ "$(date +%s)" -lt "$end" ]; do
  for i in "${!pids[@]}"; do
    d=$W/${labels[$i]}
    if "${bins[$i]}" status --config "$d/lab.toml" >/dev/null 2>&1 || [ -n "${lat[$i]:-}" ]; then
      a=$(date +%s%N); "${bins[$i]}" status --config "$d/lab.toml" >/dev/null 2>&1 || true; b=$(date +%s%N)
      lat[$i]="${lat[$i]:-} $(( (b - a) / 1000 ))"
    fi
    if [ -n "${pages[$i]}" ]; then
      curl -sf "http://127.0.0.1:${pages[$i]}/" >/dev/null || echo "page of ${labels[$i]} did not answer" >&2
    fi
  done
  sleep 10
done
stop=$(date +%s.%N)
hz=$(getconf CLK_TCK)
printf '%-12s %10s %10s %8s %12s %14s %14s\n' build rss_kb peak_kb cpu_% wakeups/s status_p50_ms status_max_ms
for i in "${!pids[@]}"; do
  p=${pids[$i]}
  t=$(( $(ticks "$p") - t0[$i] )); s=$(( $(switches "$p") - s0[$i] ))
  cpu=$(awk -v t="$t" -v hz="$hz" -v a="$start" -v b="$stop" 'BEGIN {printf "%.3f", 100 * t / hz / (b - a)}')
  wk=$(awk -v s="$s" -v a="$start" -v b="$stop" 'BEGIN {printf "%.1f", s / (b - a)}')
  if [ -n "${lat[$i]:-}" ]; then
    p50=$(tr ' ' '\n' <<<"${lat[$i]}" | grep . | sort -n | awk '{v[NR]=$1} END {printf "%.1f", v[int((NR+1)/2)]/1000}')
    mx=$(tr ' ' '\n' <<<"${lat[$i]}" | grep . | sort -n | tail -1 | awk '{printf "%.1f", $1/1000}')
  else p50=-; mx=-; fi
  printf '%-12s %10s %10s %8s %12s %14s %14s\n' "${labels[$i]}" "$(kb "$p" VmRSS)" "$(kb "$p" VmHWM)" "$cpu" "$wk" "$p50" "$mx"
done
