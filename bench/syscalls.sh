#!/usr/bin/env bash
# Syscalls per request on runicorn's request path: runs the hello example, loads it with
# wrk for a few seconds, and counts the workers' syscalls with perf's tracepoints
# (perf stat -e syscalls:sys_enter_*), divided by the requests wrk completed.
#
#   bench/syscalls.sh                       # 2 workers, Connection: close
#   bench/syscalls.sh --keepalive           # 2 workers, keep-alive (--keepalive 5)
#   WORKERS=4 CONNS=1 bench/syscalls.sh     # other pool or client sizes
#   BIN=/path/to/hello bench/syscalls.sh    # another build (before/after comparisons)
#
# perf counts in the kernel, so the server runs at nearly full speed, unlike strace -c,
# which slows every syscall down enough to change the pattern (a slowed worker always finds
# a connection waiting, so the accept that returns EAGAIN disappears). Needs root or
# kernel.perf_event_paranoid <= 1, perf (Debian: linux-perf) and wrk.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/examples/hello}
WORKERS=${WORKERS:-2}
CONNS=${CONNS:-16}
SECS=${SECS:-5}
PORT=${PORT:-18399}
mode=close
server_args=()
wrk_args=(-H "Connection: close")
if [ "${1:-}" = --keepalive ]; then
    mode=keep-alive
    server_args=(--keepalive 5)
    wrk_args=()
fi
[ -x "$BIN" ] || cargo build --release --quiet --example hello

work=$(mktemp -d)
"$BIN" --workers "$WORKERS" --bind "127.0.0.1:$PORT" --metrics-interval 0 "${server_args[@]}" \
    2>"$work/server.log" &
master=$!
trap 'kill $master 2>/dev/null; wait $master 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do
    [ "$(pgrep -c -P $master || true)" -ge "$WORKERS" ] && break
    sleep 0.05
done
sleep 0.2
workers=$(pgrep -P $master | paste -sd,)

calls="accept4 recvfrom read writev write sendto close shutdown epoll_wait epoll_ctl poll
       setsockopt getsockopt clock_gettime futex"
events=raw_syscalls:sys_enter,sched:sched_switch
for c in $calls; do events="$events,syscalls:sys_enter_$c"; done

timeout $((SECS + 30)) perf stat -x, -e "$events" -p "$workers" -o "$work/perf.txt" \
    -- sleep $((SECS + 1)) &
perf=$!
sleep 0.3
timeout $((SECS + 30)) wrk -t1 -c"$CONNS" -d"${SECS}s" "${wrk_args[@]}" "http://127.0.0.1:$PORT/" \
    >"$work/wrk.txt"
wait $perf
requests=$(awk '/requests in/ {print $1}' "$work/wrk.txt")
echo "$mode, $WORKERS workers, wrk -t1 -c$CONNS, ${SECS} s: $requests requests," \
    "$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt") req/s"
awk -F, -v r="$requests" '
    $1 ~ /^[0-9]+$/ {
        name = $3
        if (name == "sched:sched_switch") { switches = $1; next }
        sub(/^(raw_)?syscalls:sys_enter_?/, "", name)
        if (name == "") { total = $1; next }
        listed += $1
        if ($1 > 0) printf "  %-14s %6.3f per request\n", name, $1 / r
    }
    END {
        printf "  %-14s %6.3f per request\n", "(other)", (total - listed) / r
        printf "  %-14s %6.3f per request\n", "total", total / r
        printf "  %-14s %6.3f per request (context switches away from the workers, sched_switch)\n", \
            "switches", switches / r
    }' "$work/perf.txt"
