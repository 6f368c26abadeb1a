#!/usr/bin/env bash
# Times `grab get` per strategy against curl -Z (and wget2, aria2c and the Python
# originals when installed) on the same URL list from a local `grab serve`, in one
# run, rounds interleaved so a drifting machine hurts no tool more than another.
#
#   bench/get.sh [COUNT] [SIZE_BYTES] [DELAY_MS] [JOBS] [ROUNDS]
#   defaults:     1000    20000        50         64     5
#
# Prints each tool's median wall time, its ratio to the latency floor
# (COUNT / JOBS x DELAY) and to curl's. Files go to tmpfs (/dev/shm) so the disk's
# metadata speed does not blur the comparison (BENCH_OUTPUT_ROOT=DIR to change).
# GRAB=BINARY times that build instead of building this tree; GRAB_BASELINE=BINARY
# adds another build's rows (`baseline STRATEGY`) to the same rounds.
set -euo pipefail
count=${1:-1000}; size=${2:-20000}; delay=${3:-50}; jobs=${4:-64}; rounds=${5:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${GRAB:-}" ]; then
  grab=$GRAB  # a given build, e.g. a copy kept steady while the tree changes
else
  cargo build --release --quiet --manifest-path "$here/Cargo.toml"
  grab="$here/target/release/grab"
fi
python_baselines="$here/../shared/baselines/python"
source "$here/bench/common.sh"
work=$(mktemp -d)
output=$(output_folder "$work")
server=
trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$work" "$output"' EXIT

start_grab_serve "$work/serve.log"
curl -sf "$base/files/index.txt?count=$count&size=$size&delay_ms=$delay" >"$work/urls.txt"
sed 's/.*/url = "&"/' "$work/urls.txt" >"$work/curl.config"

declare -A commands
order=()
add() { order+=("$1"); commands[$1]=$2; }
for strategy in sequential threads processes async; do
  [ "$strategy" = sequential ] && [ "${BENCH_SEQUENTIAL:-0}" != 1 ] && continue
  add "grab $strategy" "\"$grab\" get -q -s $strategy -j $jobs -i \"$work/urls.txt\" -o OUT"
  # Another build measured in the same rounds: before and after a change.
  [ -n "${GRAB_BASELINE:-}" ] && add "baseline $strategy" "\"$GRAB_BASELINE\" get -q -s $strategy -j $jobs -i \"$work/urls.txt\" -o OUT"
done
add "curl -Z" "curl -sfZ --parallel-max $jobs --remote-name-all --output-dir OUT -K \"$work/curl.config\""
command -v wget2 >/dev/null && add "wget2" "wget2 -q --max-threads=$jobs -P OUT -i \"$work/urls.txt\""
command -v aria2c >/dev/null && add "aria2c" "aria2c -q -j $jobs -x 1 --dir OUT -i \"$work/urls.txt\""
if /usr/bin/python3 -c "import requests, aiohttp" 2>/dev/null; then
  add "asyncio_aiohttp.py" "/usr/bin/python3 \"$python_baselines/asyncio_aiohttp.py\" \"$work/urls.txt\" OUT"
  add "threads_requests.py" "/usr/bin/python3 \"$python_baselines/threads_requests.py\" \"$work/urls.txt\" OUT"
fi

declare -A times
for round in $(seq "$rounds"); do
  for name in "${order[@]}"; do
    out="$output/out"; rm -rf "$out"; mkdir -p "$out"
    command=${commands[$name]//OUT/\"$out\"}
    start=$EPOCHREALTIME
    eval "$command" >/dev/null 2>&1 || echo "warning: $name exited non-zero in round $round" >&2
    end=$EPOCHREALTIME
    files=$(find "$out" -type f ! -name .grab-manifest.jsonl | wc -l)  # grab's manifest is not a download
    [ "$files" -eq "$count" ] || echo "warning: $name saved $files of $count files in round $round" >&2
    times[$name]+="$(echo "$end - $start" | bc -l) "
  done
done

waves=$(( (count + jobs - 1) / jobs ))  # whole waves of JOBS requests
floor=$(echo "$waves * $delay / 1000" | bc -l)
curl_median=$(echo "${times[curl -Z]}" | median)
printf '%s files of %s bytes, %s ms latency, %s at a time, median of %s rounds; floor %.2f s\n\n' "$count" "$size" "$delay" "$jobs" "$rounds" "$floor"
printf '%-22s %9s %9s %9s   %s\n' tool median "x floor" "x curl" "all rounds (s)"
for name in "${order[@]}"; do
  m=$(echo "${times[$name]}" | median)
  printf '%-22s %7.3f s %9.2f %9.2f   %s\n' "$name" "$m" "$(echo "$m / $floor" | bc -l)" "$(echo "$m / $curl_median" | bc -l)" "${times[$name]}"
done
