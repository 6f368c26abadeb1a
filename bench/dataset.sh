#!/usr/bin/env bash
# `grab dataset` against img2dataset (its peer, installed with pip into a virtual
# environment in the work folder) on one URL list from a local `grab serve`:
# a few dozen gallery JPEGs of 400 to 1300 px behind DELAY_MS of latency,
# resized to 256 with `border`, written as webdataset shards. Each tool at its
# recommended settings for 2 cores: img2dataset with 2 processes of 64 threads,
# grab with its defaults (async, 64 downloads in flight, one image thread per core); both with
# SHARD samples per shard so that img2dataset's processes both have shards.
#
#   bench/dataset.sh [COUNT] [DELAY_MS] [ROUNDS] [SHARD]
#   defaults:         2000    30         1        500
#   IMAGES=large: the second set (1500-2600 px, a fifth of them PNG)
#
# Prints, per tool and round: wall time, images saved and images/s, CPU seconds
# (user + system, all processes) per 1000 images, and peak memory as GNU time
# reports it (the largest single process: for img2dataset, one of its processes,
# so its total is higher). The work folder (the venv is kept between runs) is
# BENCH_WORK, default target/bench-dataset; shards go to tmpfs (/dev/shm).
# GRAB=BINARY times that build instead of building this tree; GRAB_BASELINE=BINARY
# adds another build (`old`) to the same rounds.
set -euo pipefail
count=${1:-2000}; delay=${2:-30}; rounds=${3:-1}; shard=${4:-500}
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${GRAB:-}" ]; then
  grab=$GRAB
else
  cargo build --release --quiet --manifest-path "$here/Cargo.toml"
  grab="$here/target/release/grab"
fi
source "$here/bench/common.sh"
command -v nasm >/dev/null || echo "note: no nasm here, so grab's libjpeg-turbo is built without SIMD" \
  "(apt-get install nasm, then cargo clean --release -p mozjpeg-sys and build again)" >&2
work=${BENCH_WORK:-$here/target/bench-dataset}
mkdir -p "$work"
output=$(output_folder "$work")
server=
trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$output"' EXIT

venv="$work/venv"
peer=1
if [ ! -x "$venv/bin/img2dataset" ]; then
  echo "installing img2dataset into $venv (once)..." >&2
  if ! { python3 -m venv "$venv" && "$venv/bin/pip" install -q img2dataset; } >"$work/pip.log" 2>&1; then
    echo "cannot install img2dataset (see $work/pip.log):" >&2
    tail -5 "$work/pip.log" >&2
    peer=0
  fi
fi

start_grab_serve "$work/serve.log" --quiet
# 40 distinct pictures, sides from 400 to 1300 px; every URL distinct (by a
# fragment: the server refuses parameters it does not know).
# IMAGES=large: 40 other pictures (other names, so other content), sides from
# 1500 to 2600 px, every fifth a PNG.
for i in $(seq 0 $((count - 1))); do
  k=$((i % 40))
  if [ "${IMAGES:-}" = large ]; then
    extension=jpg; [ $((k % 5)) = 0 ] && extension=png
    echo "$base/images/scene-$k.$extension?w=$((1500 + (k * 229) % 1101))&h=$((1500 + (k * 347) % 1101))&delay_ms=$delay#$i"
  else
    echo "$base/images/photo-$k.jpg?w=$((400 + (k * 229) % 901))&h=$((400 + (k * 347) % 901))&delay_ms=$delay#$i"
  fi
done >"$work/urls.txt"
# The server draws each picture once and caches it: draw them before timing.
head -40 "$work/urls.txt" | sed 's/delay_ms=[0-9]*/delay_ms=0/' | while read -r url; do curl -sf -o /dev/null "$url"; done

declare -A commands
order=(grab)
commands[grab]="\"$grab\" dataset \"$work/urls.txt\" -o OUT -q --progress none --output-format webdataset --image-size 256 --resize-mode border --samples-per-shard $shard"
if [ -n "${GRAB_BASELINE:-}" ]; then
  order+=(old)
  commands[old]=${commands[grab]/\"$grab\"/\"$GRAB_BASELINE\"}
fi
if [ "$peer" = 1 ]; then
  order+=(img2dataset)
  commands[img2dataset]="\"$venv/bin/img2dataset\" --url_list \"$work/urls.txt\" --input_format txt --output_folder OUT --output_format webdataset --image_size 256 --resize_mode border --processes_count 2 --thread_count 64 --number_sample_per_shard $shard --enable_wandb False --timeout 10"
fi

# Images saved, from the shards' own stats files.
saved() { cat "$1"/*_stats.json | grep -o '"successes": *[0-9]*' | awk -F: '{s += $2} END {print s + 0}'; }

printf '%s URLs, %s ms latency, %s per shard\n\n' "$count" "$delay" "$shard"
printf '%-12s %5s %9s %7s %10s %14s %12s\n' tool round wall saved "images/s" "CPU s/1000 img" "peak RSS MB"
declare -A rates counts
ratios=""
for round in $(seq "$rounds"); do
  # Each round starts at the next tool: a fixed order favours a position
  # (bench/small.sh saw the first run of a round come out ~15% slower).
  for index in $(seq 0 $((${#order[@]} - 1))); do
    name=${order[$(( (index + round - 1) % ${#order[@]} ))]}
    out="$output/out"; rm -rf "$out"
    command=${commands[$name]//OUT/\"$out\"}
    start=$EPOCHREALTIME
    eval "/usr/bin/time -v -o \"$work/$name.time\" $command" >"$work/$name.log" 2>&1 || echo "warning: $name exited non-zero in round $round (see $work/$name.log)" >&2
    end=$EPOCHREALTIME
    wall=$(echo "$end - $start" | bc -l)
    images=$(saved "$out")
    cpu=$(awk -F': ' '/User time|System time/ {s += $2} END {print s}' "$work/$name.time")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2 / 1024}' "$work/$name.time")
    per=$( [ "$images" -gt 0 ] && echo "$cpu * 1000 / $images" | bc -l || echo 0)
    rate=$(echo "$images / $wall" | bc -l)
    printf '%-12s %5s %7.2f s %7s %10.1f %14.2f %12.0f\n' "$name" "$round" "$wall" "$images" "$rate" "$per" "$rss"
    rates[$name]=$rate; counts[$name]=$images
  done
  if [ "$peer" = 1 ]; then
    ratios+="$(echo "${rates[grab]} / ${rates[img2dataset]}" | bc -l) "
    [ "${counts[grab]}" = "${counts[img2dataset]}" ] || unequal+="$round "
  fi
done
if [ "$peer" = 1 ]; then
  # The issue's figure: grab's images/s over img2dataset's in the same round.
  printf '\ngrab / img2dataset images/s by round:'
  for ratio in $ratios; do printf ' %.2fx' "$ratio"; done
  printf '; median %.2fx, lowest %.2fx' "$(echo "$ratios" | median)" \
    "$(echo "$ratios" | tr ' ' '\n' | grep . | sort -g | head -1)"
  [ -z "${unequal:-}" ] && echo "; equal success counts in every round" \
    || echo "; success counts differ in rounds: $unequal"
fi
