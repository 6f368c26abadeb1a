#!/usr/bin/env bash
# Loads `grab serve` and ../shared/baselines/python/server_aiohttp.py with wrk on
# loopback, in the same run, and prints requests/s, p50/p99 latency and errors.
# Installs wrk and python3-aiohttp from Debian's packages when missing.
#
#   bench/serve.sh [DURATION_SECS]   (default 10)
#
# Cases: `/` at 100 connections; `/fast` (`/rapido`) at 2000 and 10000 connections,
# whose sleep-bound ideal is connections / 0.2 s (the mean sleep).
set -euo pipefail
duration=${1:-10}
here=$(cd "$(dirname "$0")/.." && pwd)
baseline="$here/../shared/baselines/python/server_aiohttp.py"
need=()
command -v wrk >/dev/null || need+=(wrk)
/usr/bin/python3 -c "import aiohttp" 2>/dev/null || need+=(python3-aiohttp)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
# Thousands of connections need thousands of descriptors, for wrk and both servers.
ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "server at $1 did not start" >&2; exit 1; }

grab_port=$(free_port)
"$here/target/release/grab" serve --quiet --port "$grab_port" --max-connections 20000 >/dev/null 2>&1 &
pids+=($!)
python_port=$(free_port)
/usr/bin/python3 "$baseline" "$python_port" >/dev/null 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$grab_port/"
wait_for "http://127.0.0.1:$python_port/"

# One wrk run: prints "requests/s p50 p99 errors".
load() {
  local connections=$1 url=$2 out="$work/wrk.txt"
  wrk -t2 -c"$connections" -d"${duration}s" --timeout 5s --latency "$url" >"$out" 2>&1 || true
  local rps p50 p99 errors non2xx
  rps=$(awk '/^Requests\/sec/ {print $2}' "$out")
  p50=$(awk '$1 == "50%" {print $2}' "$out")
  p99=$(awk '$1 == "99%" {print $2}' "$out")
  errors=$(awk -F'[ ,]+' '/Socket errors/ {print $4 + $6 + $8 + $10}' "$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$out")
  echo "${rps:-0} ${p50:--} ${p99:--} $(( ${errors:-0} + ${non2xx:-0} ))"
}

row() {
  local label=$1 connections=$2 grab_path=$3 python_path=$4 ideal=$5
  read -r g_rps g_p50 g_p99 g_errors < <(load "$connections" "http://127.0.0.1:$grab_port$grab_path")
  read -r p_rps p_p50 p_p99 p_errors < <(load "$connections" "http://127.0.0.1:$python_port$python_path")
  local ratio share
  ratio=$(echo "scale=1; $g_rps / ($p_rps + 0.0001)" | bc -l)
  share=$( [ "$ideal" = - ] && echo - || echo "$(echo "scale=1; 100 * $g_rps / $ideal" | bc -l)%")
  printf '%-20s | %10s %8s %8s %6s | %10s %8s %8s %6s | %6sx | %s\n' "$label" \
    "$g_rps" "$g_p50" "$g_p99" "$g_errors" "$p_rps" "$p_p50" "$p_p99" "$p_errors" "$ratio" "$share"
}

echo "wrk -t2, ${duration} s per case, open-file limit $(ulimit -n)"
printf '%-20s | %10s %8s %8s %6s | %10s %8s %8s %6s | %7s | %s\n' case "grab rps" p50 p99 errors "python rps" p50 p99 errors ratio "grab % of ideal"
row "/ c=100" 100 / / -
row "/fast c=2000" 2000 /fast /rapido 10000
if [ "$(ulimit -n)" -ge 10100 ]; then
  row "/fast c=10000" 10000 /fast /rapido 50000
else
  echo "/fast c=10000: skipped, the open-file limit $(ulimit -n) is below what wrk and the server need"
fi
