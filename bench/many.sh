#!/usr/bin/env bash
# 100,000 URLs of 1 KB from a local `grab serve` at -j 64: wall time, peak memory
# and peak open files of `grab get`, worker processes included, per strategy.
# Memory and descriptors are sampled from /proc every 50 ms over the whole tree.
# Files go to tmpfs (/dev/shm) so the figures are grab's, not the disk's: on this
# machine's virtual disk, creating 100,000 small files costs more kernel time than
# downloading them (BENCH_OUTPUT_ROOT=/some/disk/folder to measure that too).
#
#   bench/many.sh [COUNT] [SIZE] [JOBS] [STRATEGIES]
#   defaults:      100000  1000   64     "async threads processes"
set -euo pipefail
count=${1:-100000}; size=${2:-1000}; jobs=${3:-64}; strategies=${4:-async threads processes}
here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/bench/common.sh"
bench_setup
url_list "$count" "$size"

tree() {  # a pid and all its descendants
  local pid=$1
  echo "$pid"
  for child in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do tree "$child"; done
}

printf '%s URLs of %s bytes, -j %s, saved under %s\n' "$count" "$size" "$jobs" "$(dirname "$output")"
printf 'peak RSS counts pages shared by worker processes once per process; PSS splits them\n\n'
printf '%-10s %9s %8s %12s %12s %11s %s\n' strategy time files/s "peak RSS" "peak PSS" "peak files" result
for strategy in $strategies; do
  rm -rf "$output/out"
  start=$EPOCHREALTIME
  "$grab" get -q --json -s "$strategy" -j "$jobs" -i "$work/urls.txt" -o "$output/out" >"$work/summary.json" 2>"$work/stderr.txt" &
  pid=$!
  peak_kib=0; peak_pss=0; peak_files=0
  while kill -0 "$pid" 2>/dev/null; do
    kib=0; pss_kib=0; files=0
    for p in $(tree "$pid"); do
      rss=$(awk '/^VmRSS/ {print $2}' /proc/"$p"/status 2>/dev/null || echo 0)
      kib=$((kib + ${rss:-0}))
      pss=$(awk '/^Pss:/ {print $2}' /proc/"$p"/smaps_rollup 2>/dev/null || echo 0)
      pss_kib=$((pss_kib + ${pss:-0}))
      files=$((files + $( { ls /proc/"$p"/fd 2>/dev/null || true; } | wc -l)))
    done
    [ "$kib" -gt "$peak_kib" ] && peak_kib=$kib
    [ "$pss_kib" -gt "$peak_pss" ] && peak_pss=$pss_kib
    [ "$files" -gt "$peak_files" ] && peak_files=$files
    sleep 0.05
  done
  wait "$pid" || true
  end=$EPOCHREALTIME
  seconds=$(echo "$end - $start" | bc -l)
  saved=$(/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["saved"], "saved,", d["failed"], "failed")' "$work/summary.json")
  printf '%-10s %7.2f s %8.0f %8.1f MiB %8.1f MiB %11s %s\n' "$strategy" "$seconds" "$(echo "$count / $seconds" | bc -l)" \
    "$(echo "$peak_kib / 1024" | bc -l)" "$(echo "$peak_pss / 1024" | bc -l)" "$peak_files" "$saved"
done
