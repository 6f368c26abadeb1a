#!/usr/bin/env bash
# Times one large file over several connections (issue 25, item 1): `grab get
# --split 8` against `aria2c -x 8 -s 8 --min-split-size=1M`, from a local server
# (bench/split-server.py) that sends each connection at most RATE bytes per
# second, so the ideal is SIZE / (8 x RATE): 64 MiB at 4 MB/s, 2.1 s.
#
#   bench/split.sh [SIZE_MIB] [RATE_BYTES_PER_S] [ROUNDS]
#   defaults:       64         4000000            5
#
# Prints each tool's median wall time, its ratio to the ideal and to aria2c's,
# every round's time; tools run in a rotated order each round, so a drifting
# machine favours none. Each download is checked against the server's SHA-256.
# Files go to tmpfs (/dev/shm; BENCH_OUTPUT_ROOT=DIR to change). GRAB=BINARY
# times that build instead of building this tree. aria2c is installed with
# apt-get (package aria2) when missing and this runs as root.
set -euo pipefail
size_mib=${1:-64}; rate=${2:-4000000}; rounds=${3:-5}; connections=8
here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/bench/common.sh"
bench_grab
if ! command -v aria2c >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq aria2 >/dev/null || { apt-get update -qq && apt-get install -y -qq aria2 >/dev/null; }
  else
    echo "aria2c is missing (Debian package aria2): its row is left out" >&2
  fi
fi
bench_folders

size=$((size_mib * 1024 * 1024))
python3 "$here/bench/split-server.py" --size "$size" --rate "$rate" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 200); do grep -q "serving on" "$work/server.log" 2>/dev/null && break; sleep 0.05; done
read -r url sha256 < <(sed -n 's/^serving on \([^ ]*\) sha256 \([0-9a-f]*\)$/\1 \2/p' "$work/server.log")
[ -n "${url:-}" ] || { echo "the split server did not start: $(cat "$work/server.log")" >&2; exit 1; }

declare -A commands
order=()
add() { order+=("$1"); commands[$1]=$2; }
add "grab --split $connections (threads)" "\"$grab\" get -q -s threads --split $connections -o OUT \"$url\""
add "grab --split $connections (async)" "\"$grab\" get -q -s async --split $connections -o OUT \"$url\""
command -v aria2c >/dev/null &&
  add "aria2c -x $connections -s $connections" "aria2c -q -x $connections -s $connections --min-split-size=1M --dir OUT \"$url\""

declare -A times
for round in $(seq "$rounds"); do
  count=${#order[@]}
  for index in $(seq 0 $((count - 1))); do
    name=${order[$(((index + round) % count))]}
    out="$output/out"; rm -rf "$out"; mkdir -p "$out"
    command=${commands[$name]//OUT/\"$out\"}
    start=$EPOCHREALTIME
    eval "$command" >/dev/null 2>&1 || echo "warning: $name exited non-zero in round $round" >&2
    end=$EPOCHREALTIME
    got=$(sha256sum "$out/file.bin" 2>/dev/null | cut -d' ' -f1 || true)
    [ "$got" = "$sha256" ] || echo "warning: $name saved a wrong or no file in round $round" >&2
    times[$name]+="$(echo "$end - $start" | bc -l) "
  done
done

ideal=$(echo "$size / ($connections * $rate)" | bc -l)
aria2_median=
[ -n "${times[aria2c -x $connections -s $connections]:-}" ] && aria2_median=$(echo "${times[aria2c -x $connections -s $connections]}" | median)
printf '%s MiB, each connection at most %s bytes/s, %s connections, median of %s rounds; ideal %.2f s\n\n' \
  "$size_mib" "$rate" "$connections" "$rounds" "$ideal"
printf '%-26s %9s %9s %9s   %s\n' tool median "x ideal" "x aria2c" "all rounds (s)"
for name in "${order[@]}"; do
  m=$(echo "${times[$name]}" | median)
  vs_aria2=-
  [ -n "$aria2_median" ] && vs_aria2=$(printf '%.2f' "$(echo "$m / $aria2_median" | bc -l)")
  printf '%-26s %7.3f s %9.2f %9s   %s\n' "$name" "$m" "$(echo "$m / $ideal" | bc -l)" "$vs_aria2" "${times[$name]}"
done
