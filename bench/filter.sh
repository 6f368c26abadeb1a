#!/usr/bin/env bash
# Times `grab filter` against the Python original (Pillow and a process pool,
# ../shared/baselines/python/filters_pillow.py) on the same JPEGs, in one run,
# rounds interleaved so a drifting machine hurts no tool more than another; then
# times download and filtering apart and together (`grab get --filter`) against a
# local `grab serve`, to show that they overlap.
#
#   bench/filter.sh [COUNT] [ROUNDS] [FILTERS]
#   defaults:        20      5        blur,contrast,grayscale
#   environment: PYTHON (default /usr/bin/python3, which has Pillow), QUALITY
#   (default 75, Pillow's default JPEG quality, so both write alike), JOBS
#   (default: the number of CPUs), DELAY_MS (default 50, the server's latency
#   per image in the overlap part), GRAB (a grab binary to use instead of
#   building one), GRAB_BASELINE (another build, timed in the same rounds as
#   `baseline STRATEGY -j N`).
#
# The images are COUNT samples of 1600x1200 from `grab samples`. Prints each
# tool's median wall time, Pillow's time over grab's, threads against processes,
# and each tool's speedup from one worker to JOBS. Kernel throughput per core is
# `cargo bench --bench kernels`.
set -euo pipefail
count=${1:-20}; rounds=${2:-5}; filters=${3:-blur,contrast,grayscale}
python=${PYTHON:-/usr/bin/python3}; quality=${QUALITY:-75}; jobs=${JOBS:-$(nproc)}
delay=${DELAY_MS:-50}
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${GRAB:-}" ]; then
  grab=$GRAB  # a given build, e.g. a copy kept steady while the tree changes
else
  cargo build --release --quiet --manifest-path "$here/Cargo.toml"
  grab="$here/target/release/grab"
fi
pillow_pool="$here/../shared/baselines/python/filters_pillow.py"
source "$here/bench/common.sh"
work=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$work"' EXIT

"$grab" samples -n "$count" --size 1600x1200 -o "$work/images" 2>/dev/null
images=$(ls "$work"/images/*.jpg | tr '\n' ' ')

declare -A commands
order=()
add() { order+=("$1"); commands[$1]=$2; }
for workers in "$jobs" 1; do
  for strategy in threads processes; do
    add "grab $strategy -j $workers" "\"$grab\" filter -q -s $strategy -j $workers --quality $quality -f $filters -o OUT \"$work/images\""
    # Another build measured in the same rounds: before and after a change.
    [ -n "${GRAB_BASELINE:-}" ] && add "baseline $strategy -j $workers" "\"$GRAB_BASELINE\" filter -q -s $strategy -j $workers --quality $quality -f $filters -o OUT \"$work/images\""
  done
  add "Pillow pool PROCS=$workers" "PROCS=$workers \"$python\" \"$pillow_pool\" OUT $filters $images"
done

declare -A times
# Round 0 warms the page cache and is not counted.
for round in $(seq 0 "$rounds"); do
  for name in "${order[@]}"; do
    out="$work/out"; rm -rf "$out"; mkdir -p "$out"
    command=${commands[$name]//OUT/\"$out\"}
    start=$EPOCHREALTIME
    eval "$command" >/dev/null 2>&1 || echo "warning: $name exited non-zero in round $round" >&2
    end=$EPOCHREALTIME
    files=$(find "$out" -type f | wc -l)
    [ "$files" -eq "$count" ] || echo "warning: $name wrote $files of $count files in round $round" >&2
    [ "$round" -gt 0 ] && times[$name]+="$(echo "$end - $start" | bc -l) "
  done
done

declare -A medians
for name in "${order[@]}"; do medians[$name]=$(echo "${times[$name]}" | median); done
ratio() { echo "${medians[$1]} / ${medians[$2]}" | bc -l; }
pillow_version=$("$python" -c 'import PIL; print(PIL.__version__)')
printf '%s JPEGs of 1600x1200, %s, JPEG quality %s, %s CPUs; Pillow %s; median of %s rounds\n\n' \
  "$count" "$filters" "$quality" "$(nproc)" "$pillow_version" "$rounds"
printf '%-26s %9s %12s   %s\n' tool median "Pillow / it" "all rounds (s)"
for name in "${order[@]}"; do
  workers=${name##* }; workers=${workers#PROCS=}
  printf '%-26s %7.3f s %11.2fx   %s\n' "$name" "${medians[$name]}" "$(ratio "Pillow pool PROCS=$workers" "$name")" "${times[$name]}"
done
echo
printf 'threads against processes at -j %s: %+.1f%%\n' "$jobs" \
  "$(echo "(${medians[grab threads -j $jobs]} / ${medians[grab processes -j $jobs]} - 1) * 100" | bc -l)"
for tool in "grab threads" "grab processes" "Pillow pool"; do
  if [ "$tool" = "Pillow pool" ]; then one="$tool PROCS=1"; many="$tool PROCS=$jobs"; else one="$tool -j 1"; many="$tool -j $jobs"; fi
  speedup=$(ratio "$one" "$many")
  printf 'speedup of %-15s from 1 to %s workers: %.2fx (%.2f of the CPU count)\n' "$tool" "$jobs" "$speedup" "$(echo "$speedup / $jobs" | bc -l)"
done

# Download and filter, apart and together. The server adds DELAY_MS to each
# image so that downloading takes about as long as filtering.
start_grab_serve "$work/serve.log" --quiet
curl -sf "$base/images/index.txt?count=$count&w=1600&h=1200&delay_ms=$delay" >"$work/urls.txt"
# Warm the server's image cache, so no round pays for drawing the pictures.
"$grab" get -q -j 4 -i "$work/urls.txt" -o "$work/warm" >/dev/null 2>&1

declare -A overlap
for round in $(seq "$rounds"); do
  rm -rf "$work/get"
  start=$EPOCHREALTIME
  "$grab" get -q -j 4 -i "$work/urls.txt" -o "$work/get" >/dev/null 2>&1
  overlap[get]+="$(echo "$EPOCHREALTIME - $start" | bc -l) "
  rm -rf "$work/filtered"
  start=$EPOCHREALTIME
  "$grab" filter -q -f "$filters" -o "$work/filtered" "$work/get" >/dev/null 2>&1
  overlap[filter]+="$(echo "$EPOCHREALTIME - $start" | bc -l) "
  rm -rf "$work/both"
  start=$EPOCHREALTIME
  "$grab" get -q -j 4 -i "$work/urls.txt" -o "$work/both" --filter "$filters" >/dev/null 2>&1
  overlap[both]+="$(echo "$EPOCHREALTIME - $start" | bc -l) "
  files=$(find "$work/both/filtered" -type f ! -name ".*" | wc -l)  # not the .grab-filtered record
  [ "$files" -eq "$count" ] || echo "warning: get --filter wrote $files of $count filtered files in round $round" >&2
done
get_median=$(echo "${overlap[get]}" | median)
filter_median=$(echo "${overlap[filter]}" | median)
both_median=$(echo "${overlap[both]}" | median)
longer=$(echo "if ($get_median > $filter_median) $get_median else $filter_median" | bc -l)
echo
printf 'download and filter, %s images of 1600x1200 with %s ms latency, 4 downloads at a time:\n' "$count" "$delay"
printf '  get alone %.3f s, filter alone %.3f s, sum %.3f s\n' "$get_median" "$filter_median" "$(echo "$get_median + $filter_median" | bc -l)"
printf '  get --filter %.3f s: %.2fx the longer of the two, %.2fx their sum\n' "$both_median" \
  "$(echo "$both_median / $longer" | bc -l)" "$(echo "$both_median / ($get_median + $filter_median)" | bc -l)"
