#!/usr/bin/env bash
# Soak test (issue 11): one pushwire on loopback under the four transports at once, with
# connection churn, drops and slow consumers, for a bounded time. Not part of `cargo test`.
#
#   bash benches/soak.sh [SECONDS]        # default 600 (10 minutes); needs python3 and jq
#
# What runs side by side until SECONDS have passed:
#   - `pushwire compare` back to back: 6 subscribers per transport, 100 messages at 40/s; every
#     subscriber drops its connection mid-run and resumes by its transport's rules (since=,
#     Last-Event-ID, ?since=); lost and duplicated ids are counted per transport;
#   - `pushwire load` back to back, 30 s each on fresh channels: 25 subscribers per transport
#     (ws, sse, longpoll, poll) over 5 channels at 10 msg/s each; lost, duplicated and
#     out-of-order messages counted; every run opens and closes 100 connections;
#   - slow consumers: every 5 s, 4 SSE and 4 WebSocket subscribers of a busy channel (1 KiB
#     messages at 200/s) that never read, held 20 s: cut by --max-pending-output (256 KiB here);
#     the hub keeps 1 MiB of history in all (--history-total-bytes), so RSS can level off;
#   - the server's RSS (VmRSS) every 10 s.
# At the end: RSS after the first minute (min, max, spread), compare and load totals, slow
# consumers cut, and the exit status says whether 0 lost, 0 duplicated and RSS flat within 10 %.
# Output goes to target/soak/ (SOAK_OUT); PUSHWIRE_BIN names another binary.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
bin="${PUSHWIRE_BIN:-target/release/pushwire}"
out="${SOAK_OUT:-target/soak}"
[ -x "$bin" ] || cargo build --release
rm -rf "$out"
mkdir -p "$out"

# History is bounded to 1 MiB of payload in all (256 MiB by default): every run publishes on new
# channels, and what the hub holds should reach its steady state within the first minute.
"$bin" --addr 127.0.0.1:0 --no-demo --sse-retry 0.5 --max-pending-output 262144 \
    --history-total-bytes 1048576 >"$out/listening" 2>"$out/server.log" &
server=$!
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    kill "$server" 2>/dev/null || true
}
trap cleanup EXIT
addr=""
for _ in $(seq 1 100); do
    addr="$(sed -n 's|^pushwire listening on http://||p' "$out/listening")"
    [ -n "$addr" ] && break
    sleep 0.1
done
[ -n "$addr" ] || { echo "soak: pushwire did not start"; cat "$out/server.log"; exit 1; }
echo "soak: pushwire pid $server on $addr for $secs s; output in $out"
start=$SECONDS
end=$((SECONDS + secs))

# RSS every 10 s.
(
    while [ $SECONDS -lt $end ]; do
        rss=$(awk '/^VmRSS/ {print $2}' "/proc/$server/status")
        t=$((SECONDS - start))
        echo "$t $rss" >>"$out/rss.txt"
        awk -v t="$t" -v rss="$rss" 'BEGIN { printf "soak: t=%4ds  rss=%6.1f MiB\n", t, rss / 1024 }'
        sleep 10
    done
) &
pids+=($!)

# Churn and drops with resume: compare runs back to back.
(
    n=0
    while [ $((SECONDS + 15)) -lt $end ]; do
        "$bin" compare --url "http://$addr" --subscribers 6 --messages 100 --rate 40 \
            --poll-interval 0.25 --format json >"$out/compare-$n.json" 2>>"$out/compare.log" \
            || echo "compare run $n failed" >>"$out/compare.log"
        n=$((n + 1))
    done
) &
pids+=($!)

# Sustained load over the four transports, fresh connections every 30 s.
(
    n=0
    while [ $((SECONDS + 40)) -lt $end ]; do
        "$bin" load --pub-url "http://$addr/pub/{channel}" \
            --sub-url "ws=ws://$addr/ws/{channel}?since=0" \
            --sub-url "sse=http://$addr/sse/{channel}?last_event_id=0" \
            --sub-url "longpoll=http://$addr/longpoll/{channel}?since=0" \
            --sub-url "poll=http://$addr/poll/{channel}?since=0" \
            --subscribers 25 --channels 5 --rate 10 --payload 64 --duration 30 \
            --channel-prefix "soak$n-" --json >"$out/load-$n.json" 2>>"$out/load.log" \
            || echo "load run $n failed" >>"$out/load.log"
        n=$((n + 1))
    done
) &
pids+=($!)

# Slow consumers on a busy channel.
python3 - "$addr" "$end" "$SECONDS" >"$out/slow.log" 2>&1 <<'EOF' &
import socket, sys, time, threading
host, port = sys.argv[1].rsplit(":", 1)
deadline = time.time() + int(sys.argv[2]) - int(sys.argv[3])
body = b"x" * 1024
pub = b"POST /pub/soak-slow HTTP/1.1\r\nHost: t\r\nContent-Length: 1024\r\n\r\n" + body

def publisher():
    s = socket.create_connection((host, int(port)))
    s.settimeout(10)
    while time.time() < deadline:
        s.sendall(pub * 20)
        got = 0
        while got < 20:
            got += s.recv(65536).count(b"HTTP/1.1 200")
        time.sleep(0.1)

threading.Thread(target=publisher, daemon=True).start()
held = []
opened = 0
while time.time() < deadline - 5:
    for path in ["/sse/soak-slow"] * 4 + ["/ws/soak-slow"] * 4:
        s = socket.create_connection((host, int(port)))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        upgrade = (b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                   if path.startswith("/ws") else b"")
        s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\n" + upgrade + b"\r\n")
        held.append((time.time(), s))
        opened += 1
    now = time.time()
    for t, s in [h for h in held if now - h[0] > 20]:
        s.close()
    held = [h for h in held if now - h[0] <= 20]
    time.sleep(5)
print("slow consumers opened", opened)
EOF
pids+=($!)

wait "${pids[@]}" 2>/dev/null || true
pids=()
stats=$(curl -s "http://$addr/stats")
kill "$server" 2>/dev/null || true

echo
echo "== soak: $secs s against $bin =="
compare_runs=$(ls "$out"/compare-*.json 2>/dev/null | wc -l)
load_runs=$(ls "$out"/load-*.json 2>/dev/null | wc -l)
compare_sum() {
    cat "$out"/compare-*.json 2>/dev/null | jq -s "[.[].columns[] | select(.transport == \"$1\") | .$2] | add // 0"
}
load_sum() {
    cat "$out"/load-*.json 2>/dev/null | jq -s "[.[].transports[] | select(.transport == \"$1\") | .$2] | add // 0"
}
fail=0
echo "compare ($compare_runs runs, each with a drop and resume per subscriber):"
printf '  %-9s %10s %10s %6s %11s\n' transport expected delivered lost duplicated
for t in poll longpoll sse ws; do
    e=$(compare_sum "$t" expected); d=$(compare_sum "$t" delivered)
    l=$(compare_sum "$t" lost); u=$(compare_sum "$t" duplicated)
    printf '  %-9s %10s %10s %6s %11s\n' "$t" "$e" "$d" "$l" "$u"
    [ "$l" = 0 ] && [ "$u" = 0 ] || fail=1
done
echo "load ($load_runs runs of 30 s, 100 connections each):"
printf '  %-9s %10s %10s %6s %11s %12s\n' transport expected delivered lost duplicated out_of_order
for t in poll longpoll sse ws; do
    e=$(load_sum "$t" expected); d=$(load_sum "$t" delivered)
    l=$(load_sum "$t" lost); u=$(load_sum "$t" duplicates); o=$(load_sum "$t" out_of_order)
    printf '  %-9s %10s %10s %6s %11s %12s\n' "$t" "$e" "$d" "$l" "$u" "$o"
    [ "$l" = 0 ] && [ "$u" = 0 ] || fail=1
done
slow=$(echo "$stats" | jq '[.transports.sse.slow_disconnects, .transports.ws.slow_disconnects] | add')
echo "slow consumers: $(tail -n 1 "$out/slow.log"), cut by the server: $slow"
awk -v from=60 '
    $1 >= from { n++; v = $2; if (n == 1 || v < min) min = v; if (v > max) max = v }
    END {
        if (n == 0) { print "rss: no sample after the first minute"; exit 2 }
        spread = (max - min) / min * 100
        printf "rss after the first minute: %d samples, min %.1f MiB, max %.1f MiB, spread %.1f %%\n",
            n, min / 1024, max / 1024, spread
        exit spread > 10 ? 1 : 0
    }' "$out/rss.txt" || fail=1
if [ "$fail" = 0 ]; then echo "soak: PASS"; else echo "soak: FAIL"; fi
exit "$fail"
