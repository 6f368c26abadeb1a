#!/usr/bin/env bash
# Many small files over HTTPS from one host (issue 25, item 8): COUNT files of SIZE
# bytes, JOBS at a time, saved on tmpfs, over HTTP/2 from `nghttpd` (Debian
# nghttp2-server) serving a folder, by `grab get` (its default strategy, async, and
# `-s threads`) and by `curl -Z --http2`; then the same files over HTTP/1.1 from
# nginx (Debian nginx-light, with a config of this script's own), by grab (which
# learns the host speaks HTTP/1.1) and by `curl -Z --http1.1`. Both servers use a
# certificate made here, trusted by --cacert. For each: wall time, files/s, CPU
# (user + system) per file for the client's process tree; the tools run
# interleaved, ROUNDS times, and the medians are shown. Target: at least curl's
# files/s for each protocol.
#
#   bench/h2.sh [COUNT] [SIZE] [JOBS] [ROUNDS]   defaults: 5000 1024 64 3
#
# GRAB=BINARY times that build instead of building this tree.
set -euo pipefail
count=${1:-5000}; size=${2:-1024}; jobs=${3:-64}; rounds=${4:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/bench/common.sh"
for program in nghttpd nginx curl openssl; do
  command -v "$program" >/dev/null || { echo "h2.sh: needs $program (Debian: nghttp2-server, nginx-light, curl, openssl)" >&2; exit 1; }
done
bench_grab
bench_folders

# A CA and a certificate it signed for 127.0.0.1 (rustls refuses a self-signed
# CA certificate used as the server's own).
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench-ca \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
  -keyout "$work/key.pem" -out "$work/leaf.csr" 2>/dev/null
openssl x509 -req -in "$work/leaf.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
  -CAcreateserial -days 2 -out "$work/cert.pem" \
  -extfile <(printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n') 2>/dev/null

# The files: one random blob cut into COUNT pieces, readable by nginx's
# workers (which run as another user when started by root).
chmod 755 "$work"
mkdir -p "$work/www"
head -c $((count * size)) /dev/urandom >"$work/blob"
(cd "$work/www" && split -b "$size" -d -a 6 --additional-suffix=.bin "$work/blob" f)
rm "$work/blob"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 100); do curl -s -o /dev/null --cacert "$work/ca.pem" "$1" && return; sleep 0.05; done; echo "h2.sh: $1 did not answer" >&2; exit 1; }

h2_port=$(free_port)
nghttpd -a 127.0.0.1 -d "$work/www" "$h2_port" "$work/key.pem" "$work/cert.pem" >/dev/null 2>&1 &
stop_on_exit+=($!)
h1_port=$(free_port)
cat >"$work/nginx.conf" <<EOF
daemon off;
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx-body;
  proxy_temp_path $work/nginx-proxy;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$h1_port ssl;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    root $work/www;
  }
}
EOF
nginx -c "$work/nginx.conf" -p "$work" -e "$work/nginx-error.log" &
stop_on_exit+=($!)
wait_for "https://127.0.0.1:$h2_port/f000000.bin"
wait_for "https://127.0.0.1:$h1_port/f000000.bin"

# The URL lists and curl's configs: one url and one output per file.
for protocol in h2 h1; do
  port=$h2_port; [ $protocol = h1 ] && port=$h1_port
  (cd "$work/www" && ls) | sed "s|^|https://127.0.0.1:$port/|" >"$work/urls-$protocol.txt"
  awk -v out="$output/curl" '{ n = $0; sub(/.*\//, "", n);
    printf "url = \"%s\"\noutput = \"%s/%s\"\n", $0, out, n }' "$work/urls-$protocol.txt" >"$work/curl-$protocol.config"
done

tools=("h2-grab-async" "h2-grab-threads" "h2-curl" "h1-grab-async" "h1-grab-threads" "h1-curl")
run() {  # tool -> "seconds cpu_seconds files"
  local tool=$1 protocol=${1%%-*} name=${1#*-}
  rm -rf "$output/grab" "$output/curl"; mkdir -p "$output/curl"
  case $name in
    grab-*) /usr/bin/time -f "%e %U %S" -o "$work/time" \
              "$grab" get -q -s "${name#grab-}" -j "$jobs" --cacert "$work/ca.pem" \
              -i "$work/urls-$protocol.txt" -o "$output/grab" 2>/dev/null || true
            files=$(find "$output/grab" -type f ! -name '.grab*' | wc -l) ;;
    curl)   version=--http2; [ "$protocol" = h1 ] && version=--http1.1
            /usr/bin/time -f "%e %U %S" -o "$work/time" \
              curl -s -Z --parallel-max "$jobs" "$version" --cacert "$work/ca.pem" \
              -K "$work/curl-$protocol.config" >/dev/null 2>&1 || true
            files=$(find "$output/curl" -type f | wc -l) ;;
  esac
  read -r seconds user system <"$work/time"
  echo "$seconds $(echo "$user + $system" | bc -l) $files"
}
declare -A times cpus saved
for round in $(seq "$rounds"); do
  # Each round starts at the next tool, as bench/small.sh does.
  for index in $(seq 0 $((${#tools[@]} - 1))); do
    tool=${tools[$(( (index + round) % ${#tools[@]} ))]}
    read -r seconds cpu files < <(run "$tool")
    times[$tool]+="$seconds "; cpus[$tool]+="$cpu "; saved[$tool]=$files
  done
done
printf '%s files of %s bytes over HTTPS, -j %s, on %s; median of %s interleaved rounds\n' \
  "$count" "$size" "$jobs" "$(dirname "$output")" "$rounds"
printf 'h2: %s; h1: %s\n\n' "$(nghttpd --version 2>&1 | head -1)" "$(nginx -v 2>&1)"
printf '%-16s %8s %9s %14s %8s %s\n' tool time files/s "CPU/file (us)" "vs curl" saved
for tool in "${tools[@]}"; do
  protocol=${tool%%-*}
  curl_rate=$(echo "$count / $(echo "${times[$protocol-curl]}" | median)" | bc -l)
  seconds=$(echo "${times[$tool]}" | median); cpu=$(echo "${cpus[$tool]}" | median)
  rate=$(echo "$count / $seconds" | bc -l)
  printf '%-16s %6.2f s %9.0f %14.1f %7.2fx %s\n' "$tool" "$seconds" "$rate" \
    "$(echo "$cpu * 1000000 / $count" | bc -l)" "$(echo "$rate / $curl_rate" | bc -l)" "${saved[$tool]}"
done
