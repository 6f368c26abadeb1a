# Sourced by the bench/ scripts: what they all do the same way.

# The median of the numbers on stdin (one per word).
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# Starts `grab serve` on a free port, its log in $1 (extra arguments follow), and
# sets `server` (its pid) and `base` (its URL) once it answers.
start_grab_serve() {
  local log=$1
  shift
  "$grab" serve --port 0 "$@" >"$log" 2>&1 &
  server=$!
  for _ in $(seq 100); do grep -q "serving on" "$log" 2>/dev/null && break; sleep 0.05; done
  base=$(sed -n 's/^serving on \(http[^ ]*\).*/\1/p' "$log")
  [ -n "$base" ] || { echo "grab serve did not start: $(cat "$log")" >&2; exit 1; }
}

# A folder for downloaded files on tmpfs (/dev/shm), so the disk's cost of creating
# small files does not blur the comparison; BENCH_OUTPUT_ROOT=DIR to choose. $1 is
# the fallback when there is no tmpfs.
output_folder() {
  local root=${BENCH_OUTPUT_ROOT:-/dev/shm}
  [ -d "$root" ] || root=$1
  mktemp -d -p "$root"
}
