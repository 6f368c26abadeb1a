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

# The set-up most benchmarks share, for a script that set `here` (the checkout):
# builds grab (sets `grab`), makes a work folder (`work`) and an output folder on
# tmpfs (`output`), starts `grab serve` (`server`, `base`), and on exit stops it and
# every pid added to `stop_on_exit`, and removes both folders.
bench_setup() {
  bench_grab
  bench_folders
  start_grab_serve "$work/serve.log" --quiet
}

# Sets `grab`: the build GRAB names, else this tree's, built now.
bench_grab() {
  if [ -n "${GRAB:-}" ]; then
    grab=$GRAB  # a given build, e.g. a copy kept steady while the tree changes
  else
    cargo build --release --quiet --manifest-path "$here/Cargo.toml"
    grab="$here/target/release/grab"
  fi
}

# Makes `work` and the tmpfs `output`, and on exit stops `server` and every pid
# in `stop_on_exit` and removes both: for a script that starts its own server.
bench_folders() {
  work=$(mktemp -d)
  output=$(output_folder "$work")
  server=
  stop_on_exit=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  local pid
  for pid in $server "${stop_on_exit[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work" "$output"
}

# The server's list of COUNT files of SIZE bytes (more query parameters, such as
# `&delay_ms=20`, in $3) into $work/urls.txt.
url_list() { curl -sf "$base/files/index.txt?count=$1&size=$2${3:-}" >"$work/urls.txt"; }
