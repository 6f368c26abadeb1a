#!/usr/bin/env bash
# The cost of the Redis queue: 4 `grab queue work` processes on this machine
# against one `grab get` with the same total -j, over the same URLs with 20 ms
# latency from a local `grab serve`, and the Redis commands each job costs
# (as clients send them, and counting those run inside the queue's scripts).
# Needs redis-server (started here on a free port, persistence off).
#
#   bench/queue.sh [COUNT] [TOTAL_JOBS] [WORKERS] [STRATEGY]
#   defaults:       20000   64           4         async
set -euo pipefail
count=${1:-20000}; jobs=${2:-64}; workers=${3:-4}; strategy=${4:-async}
here=$(cd "$(dirname "$0")/.." && pwd)
source "$here/bench/common.sh"
bench_setup
url_list "$count" 1000 "&delay_ms=20"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
redis=$!
stop_on_exit+=("$redis")
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
address="redis://127.0.0.1:$port/0"
per_worker=$((jobs / workers))

stat() { redis-cli -p "$port" info "$1" | tr -d '\r'; }
# Every command Redis ran, those inside the queue's scripts included.
commands() { stat stats | sed -n 's/^total_commands_processed://p'; }
# Round trips' worth: commands the clients sent (a script call counts once).
sent() { stat commandstats | grep -v -E 'cmdstat_(hexists|hget|hset|hdel|incr|xack|xadd|xpending):' | sed -n 's/^cmdstat_[^:]*:calls=\([0-9]*\),.*/\1/p' | paste -sd+ | bc; }

printf '%s URLs of 1000 bytes with 20 ms latency, -s %s, total -j %s\n\n' "$count" "$strategy" "$jobs"
start=$EPOCHREALTIME
"$grab" get -q --json -s "$strategy" -j "$jobs" -i "$work/urls.txt" -o "$output/get" >"$work/get.json" 2>"$work/get.err"
get_seconds=$(echo "$EPOCHREALTIME - $start" | bc -l)
get_saved=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["saved"])' "$work/get.json")

redis-cli -p "$port" config resetstat >/dev/null
start=$EPOCHREALTIME
"$grab" queue push --redis "$address" --queue bench -i "$work/urls.txt" 2>"$work/push.err"
push_seconds=$(echo "$EPOCHREALTIME - $start" | bc -l)
push_all=$(commands); push_sent=$(sent)
redis-cli -p "$port" config resetstat >/dev/null
start=$EPOCHREALTIME
pids=()
for index in $(seq "$workers"); do
  "$grab" queue work --redis "$address" --queue bench -q --progress none -s "$strategy" -j "$per_worker" \
    -o "$output/queue" 2>"$work/worker$index.err" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
queue_seconds=$(echo "$EPOCHREALTIME - $start" | bc -l)
work_all=$(commands); work_sent=$(sent)
queue_saved=$(find "$output/queue" -name '*.bin' | wc -l)

printf '%-34s %8s %9s %7s\n' run time files/s saved
printf '%-34s %6.2f s %9.0f %7s\n' "grab get -j $jobs" "$get_seconds" "$(echo "$count / $get_seconds" | bc -l)" "$get_saved"
printf '%-34s %6.2f s %9.0f %7s\n' "$workers x grab queue work -j $per_worker" "$queue_seconds" "$(echo "$count / $queue_seconds" | bc -l)" "$queue_saved"
printf '\nqueue throughput / get throughput: %.3f\n' "$(echo "$get_seconds / $queue_seconds" | bc -l)"
printf 'push: %.2f s; Redis commands per job: %.3f run, %.4f sent by clients\n' \
  "$push_seconds" "$(echo "$push_all / $count" | bc -l)" "$(echo "$push_sent / $count" | bc -l)"
printf 'work: Redis commands per job: %.3f run, %.4f sent by clients\n' \
  "$(echo "$work_all / $count" | bc -l)" "$(echo "$work_sent / $count" | bc -l)"
printf '(run: those inside the scripts included; sent: a script call counts once; the\n'
printf ' sent count leaves out every HGET/HSET/XADD/XACK..., which here only scripts send)\n'
printf 'redis-server CPU: %s\n' "$(ps -o times= -p "$redis") s"
redis-cli -p "$port" info commandstats | tr -d '\r' | grep cmdstat | sed 's/^/  /'
