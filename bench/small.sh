#!/usr/bin/env bash
# Many small files (issue 12): COUNT files of SIZE bytes from a local `grab serve`,
# JOBS at a time, saved on tmpfs, by grab's strategies and by `curl -Z` reading a
# config file (curl's fastest form for a list). For each: wall time, files/s, CPU
# (user + system) per file, as /usr/bin/time reports it for the whole process tree
# (grab's worker processes included). The tools run interleaved, ROUNDS times, and
# the medians are shown. Target: grab's default strategy at least 1.2x curl's
# files/s, with no more CPU per file.
#
#   bench/small.sh [COUNT] [SIZE] [JOBS] [ROUNDS]   defaults: 50000 1024 64 3
#
# GRAB=BINARY times that build instead of building this tree; GRAB_BASELINE=BINARY
# adds another build's rows (`old-async`, `old-threads`) to the same rounds.
set -euo pipefail
count=${1:-50000}; size=${2:-1024}; jobs=${3:-64}; rounds=${4:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/bench/common.sh"
bench_setup
url_list "$count" "$size"
# curl's config: one url and one output per file, as `curl -K` reads them.
awk -v out="$output/curl" '{ n = $0; sub(/.*\//, "", n); sub(/\?.*/, "", n);
  printf "url = \"%s\"\noutput = \"%s/%s\"\n", $0, out, n }' "$work/urls.txt" >"$work/curl.config"

tools=("grab-async" "grab-threads")
[ -n "${GRAB_BASELINE:-}" ] && tools+=("old-async" "old-threads")
tools+=("curl")
run() {  # tool -> "seconds cpu_seconds files"
  local tool=$1
  rm -rf "$output/grab" "$output/curl"; mkdir -p "$output/curl"
  case $tool in
    grab-*|old-*)
            binary=$grab; [ "${tool%%-*}" = old ] && binary=$GRAB_BASELINE
            /usr/bin/time -f "%e %U %S" -o "$work/time" \
              "$binary" get -q -s "${tool#*-}" -j "$jobs" -i "$work/urls.txt" -o "$output/grab" 2>/dev/null || true
            files=$(find "$output/grab" -type f ! -name '.grab*' | wc -l) ;;
    curl)   /usr/bin/time -f "%e %U %S" -o "$work/time" \
              curl -s -Z --parallel-max "$jobs" -K "$work/curl.config" >/dev/null 2>&1 || true
            files=$(find "$output/curl" -type f | wc -l) ;;
  esac
  read -r seconds user system <"$work/time"
  echo "$seconds $(echo "$user + $system" | bc -l) $files"
}
declare -A times cpus saved
for round in $(seq "$rounds"); do
  # Each round starts at the next tool: the first run of a round follows the
  # removal of the last one's files and came out some 15% slower, whichever tool.
  for index in $(seq 0 $((${#tools[@]} - 1))); do
    tool=${tools[$(( (index + round) % ${#tools[@]} ))]}
    read -r seconds cpu files < <(run "$tool")
    times[$tool]+="$seconds "; cpus[$tool]+="$cpu "; saved[$tool]=$files
  done
done
printf '%s files of %s bytes, -j %s, on %s; median of %s interleaved rounds\n\n' \
  "$count" "$size" "$jobs" "$(dirname "$output")" "$rounds"
printf '%-13s %8s %9s %14s %8s %s\n' tool time files/s "CPU/file (us)" "vs curl" saved
curl_rate=$(echo "$count / $(echo "${times[curl]}" | median)" | bc -l)
for tool in "${tools[@]}"; do
  seconds=$(echo "${times[$tool]}" | median); cpu=$(echo "${cpus[$tool]}" | median)
  rate=$(echo "$count / $seconds" | bc -l)
  printf '%-13s %6.2f s %9.0f %14.1f %7.2fx %s\n' "$tool" "$seconds" "$rate" \
    "$(echo "$cpu * 1000000 / $count" | bc -l)" "$(echo "$rate / $curl_rate" | bc -l)" "${saved[$tool]}"
done
