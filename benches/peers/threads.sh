#!/usr/bin/env bash
# One event loop against two on the same fan-out (issue 14): 1 000 WebSocket subscribers over 10
# channels, 64-byte messages, the publish rate stepped up until the server (or, on a small
# machine, the load generator beside it) cannot keep up. Prints, per loop count and rate: what was
# delivered, deliveries per second, latency p50/p99, server CPU per delivery and the server cores
# that took, so the per-core figure can be read off.
#
#   bash benches/peers/threads.sh                    # rates 100 200 400 800 per channel, 5 s each
#   RATES="200 400" LOOPS="1 2" SECONDS_PER_RUN=5 bash benches/peers/threads.sh
#   PUSHWIRE=target/release/pushwire …               # skips the build
#   SERVER_ARGS="--write-coalesce 0" …               # more server flags (here: a write per message,
#                                                    # the loop's raw capacity)
#
# The servers listen on loopback ports, run as children of this script and are stopped by their
# PIDs; load goes to 127.0.0.0/8 only.
set -euo pipefail
cd "$(dirname "$0")/../.."

RATES=${RATES:-100 200 400 800}
LOOPS=${LOOPS:-1 2}
DUR=${SECONDS_PER_RUN:-5}
CLIENT_THREADS=${CLIENT_THREADS:-2}
WORK=$(mktemp -d /tmp/pushwire-threads.XXXXXX)
PW=${PUSHWIRE:-}
if [ -z "$PW" ]; then
    cargo build --release -q
    PW=target/release/pushwire
fi
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
SERVER=
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT

for loops in $LOOPS; do
    for rate in $RATES; do
        # shellcheck disable=SC2086
        "$PW" --addr 127.0.0.1:0 --threads "$loops" --no-demo --max-connections 25000 \
            --sse-heartbeat 600 --ws-ping-interval 600 ${SERVER_ARGS:-} \
            > "$WORK/server.out" 2> "$WORK/server.err" &
        SERVER=$!
        for _ in $(seq 100); do
            grep -q listening "$WORK/server.out" 2>/dev/null && break
            sleep 0.1
        done
        addr=$(sed -n 's#pushwire listening on http://##p' "$WORK/server.out")
        echo "== $loops loop(s), $rate msg/s per channel" >&2
        "$PW" load --pub-url "http://$addr/pub/{channel}" --sub-url "ws=ws://$addr/ws/{channel}?since=0" \
            --subscribers 1000 --channels 10 --rate "$rate" --payload 64 --duration "$DUR" --drain 5 \
            --threads "$CLIENT_THREADS" --server-pid "$SERVER" --json > "$WORK/$loops-$rate.json" || true
        kill "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
        SERVER=
    done
done

python3 - "$WORK" "$DUR" "$LOOPS" "$RATES" <<'PY'
import json, os, sys
work, dur = sys.argv[1], float(sys.argv[2])
loops, rates = sys.argv[3].split(), sys.argv[4].split()
head = ["loops", "offered msg/s/channel", "offered deliveries/s", "delivered/expected", "lost", "deliveries/s",
        "p50 ms", "p99 ms", "server CPU µs/delivery", "server cores", "deliveries/s per server core",
        "client CPU µs/msg/thread"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for l in loops:
    for r in rates:
        path = os.path.join(work, f"{l}-{r}.json")
        if not os.path.exists(path) or os.path.getsize(path) == 0:
            print(f"| {l} | {r} | - | (no report) |")
            continue
        j = json.load(open(path))
        t, s = j["total"], j.get("server") or {}
        cpu = s.get("cpu_us_per_delivery")
        rate = t["delivered"] / dur
        cores = cpu * rate / 1e6 if cpu else None
        print("| " + " | ".join([
            l, r, f"{int(r) * 1000:,}", f'{t["delivered"]}/{t["expected"]}', f'{t["lost"]}',
            f"{rate:,.0f}", f'{t["latency_us"]["p50"]/1000:.2f}', f'{t["latency_us"]["p99"]/1000:.2f}',
            f"{cpu:.2f}" if cpu else "-", f"{cores:.2f}" if cores else "-",
            f"{1e6 / cpu:,.0f}" if cpu else "-",
            "/".join(f"{v:.2f}" for v in j["client_cpu_us_per_message"]) if t["delivered"] else "-",
        ]) + " |")
PY
