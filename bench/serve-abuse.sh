#!/usr/bin/env bash
# A load test of `grab serve` under abuse: SILENT sockets that never send a byte
# (reopened whenever the server closes them), a few oversize request heads every
# second, and one client making legitimate requests all the while. Prints the
# legitimate requests answered and their latency, and the server's resident memory
# before, at its peak during, and after. The cap and header timeout are lowered so
# the silent sockets fill every slot and keep being timed out.
#
#   bench/serve-abuse.sh [SILENT] [SECONDS] [MAX_CONNECTIONS] [HEADER_TIMEOUT]
#   (defaults 300 20 256 2)
set -euo pipefail
silent=${1:-300}
seconds=${2:-20}
max_connections=${3:-256}
header_timeout=${4:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
ulimit -n "$(ulimit -Hn)"
output=$(mktemp)
"$here/target/release/grab" serve --port 0 --quiet --max-connections "$max_connections" \
  --header-timeout "$header_timeout" >"$output" &
server=$!
trap 'kill $server 2>/dev/null; rm -f "$output"' EXIT
for _ in $(seq 100); do grep -q serving "$output" && break; sleep 0.1; done
base=$(awk '{print $3}' "$output")
echo "grab serve at $base: --max-connections $max_connections --header-timeout $header_timeout"
python3 "$here/bench/serve-abuse.py" "$base" "$server" "$silent" "$seconds"
