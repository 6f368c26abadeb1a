#!/usr/bin/env bash
# The fixed cost of a run: `grab get` of one small file against curl and wget2,
# timed by hyperfine over many runs, from a local `grab serve` (no latency added).
# Target (issue 12): grab within 5 ms of curl. Start-up, connection, one request,
# an atomic write and the exit are all that is measured.
#
#   bench/oneshot.sh [RUNS]     default 100
set -euo pipefail
runs=${1:-100}
here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/bench/common.sh"
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }
bench_setup
url="$base/files/file-0001.bin?size=1000"
commands=(
  "$grab get -q -o $output/grab $url"
  "$grab get -q -s threads -o $output/grab $url"
  "$grab get -q -s sequential -o $output/grab $url"
  "curl -s -o $output/curl.bin $url"
)
command -v wget2 >/dev/null && commands+=("wget2 -q -O $output/wget2.bin $url")
# Each run starts from an empty folder, so grab downloads rather than skips.
hyperfine -N --warmup 10 --runs "$runs" --prepare "rm -rf $output/grab" \
  --export-markdown "$work/table.md" "${commands[@]}" >/dev/null
sed -e "s|$grab|grab|g" -e "s|$output/||g" -e "s|$base|http://127.0.0.1:PORT|g" "$work/table.md"
