#!/usr/bin/env bash
# The same `pushwire load` scenarios against Nchan and against pushwire, side by side.
#
#   bash benches/peers/nchan.sh            # a few minutes; prints the table BENCHMARKS.md quotes
#   SECONDS_PER_SCENARIO=5 IDLE=2000 bash benches/peers/nchan.sh   # a quicker pass
#   THREADS=1 …                            # subscriber threads of the load generator (default 2)
#
# Installs Debian's nginx and libnginx-mod-nchan with apt when missing. Both servers listen on
# loopback ports, run as children of this script and are stopped by their PIDs. Load goes to
# 127.0.0.0/8 only.
set -euo pipefail
cd "$(dirname "$0")/../.."

DUR=${SECONDS_PER_SCENARIO:-10}
IDLE=${IDLE:-10000}
THREADS=${THREADS:-2}
WORK=$(mktemp -d /tmp/pushwire-peers.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

if [ ! -e /usr/share/nginx/modules/ngx_nchan_module.so ] || ! command -v nginx >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx libnginx-mod-nchan
fi
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# PUSHWIRE=path/to/pushwire skips the build.
PW=${PUSHWIRE:-}
if [ -z "$PW" ]; then
    cargo build --release -q
    PW=target/release/pushwire
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Each scenario gets fresh servers, so memory per connection is not hidden by memory an earlier
# scenario left allocated.
start_servers() {
    # Nchan: nginx in the foreground, one worker; the worker's PID is the one measured.
    NPORT=$(free_port)
    rm -rf "$WORK/nchan"
    mkdir -p "$WORK/nchan"
    sed -e "s#__DIR__#$WORK/nchan#g" -e "s#__PORT__#$NPORT#g" benches/peers/nchan.conf > "$WORK/nchan/nginx.conf"
    nginx -c "$WORK/nchan/nginx.conf" -p "$WORK/nchan" -g "user root;" &
    NGINX=$!
    PIDS+=("$NGINX")
    # pushwire on a free port.
    "$PW" --addr 127.0.0.1:0 --no-demo --max-connections 25000 --sse-heartbeat 600 --ws-ping-interval 600 \
        > "$WORK/pushwire.out" 2> "$WORK/pushwire.err" &
    PWPID=$!
    PIDS+=("$PWPID")
    for _ in $(seq 100); do
        grep -q listening "$WORK/pushwire.out" 2>/dev/null && break
        sleep 0.1
    done
    PWADDR=$(sed -n 's#pushwire listening on http://##p' "$WORK/pushwire.out")
    WORKER=
    for _ in $(seq 100); do
        WORKER=$(pgrep -P "$NGINX" | head -1 || true)
        code=$(curl -s -o /dev/null -w '%{http_code}' -m 1 "http://127.0.0.1:$NPORT/pub/probe" || true)
        [ -n "$WORKER" ] && [ "$code" != 000 ] && break
        sleep 0.1
    done
    [ -n "$WORKER" ] || { echo "nginx did not start: $(cat "$WORK/nchan/error.log" 2>/dev/null)" >&2; exit 1; }
    echo "nchan: nginx $(nginx -v 2>&1 | sed 's#.*/##'), worker pid $WORKER, port $NPORT; pushwire pid $PWPID at $PWADDR" >&2
}

stop_servers() {
    kill "$NGINX" "$PWPID" 2>/dev/null || true
    wait "$NGINX" "$PWPID" 2>/dev/null || true
    PIDS=()
}

# run NAME SERVER ARGS… — one scenario against one server, JSON kept.
run() {
    local name=$1 server=$2
    shift 2
    local pub sub pid
    if [ "$server" = nchan ]; then
        pub="http://127.0.0.1:$NPORT/pub/{channel}"
        pid=$WORKER
    else
        pub="http://$PWADDR/pub/{channel}"
        pid=$PWPID
    fi
    local subs=()
    for kind in "$@"; do
        case "$server:$kind" in
            nchan:ws) subs+=(--sub-url "ws=ws://127.0.0.1:$NPORT/sub/{channel}") ;;
            nchan:*) subs+=(--sub-url "$kind=http://127.0.0.1:$NPORT/sub/{channel}") ;;
            pushwire:ws) subs+=(--sub-url "ws=ws://$PWADDR/ws/{channel}?since=0") ;;
            pushwire:sse) subs+=(--sub-url "sse=http://$PWADDR/sse/{channel}?last_event_id=0") ;;
            pushwire:longpoll) subs+=(--sub-url "longpoll=http://$PWADDR/longpoll/{channel}?since=0") ;;
        esac
    done
    echo "== $name on $server" >&2
    "$PW" load --pub-url "$pub" "${subs[@]}" --server-pid "$pid" --threads "$THREADS" \
        --channel-prefix "$name-$RANDOM-" $SCENARIO_ARGS --json > "$WORK/$name.$server.json"
}

scenario() {
    local name=$1 kind=$2
    shift 2
    SCENARIO_ARGS="$*"
    start_servers
    for server in nchan pushwire; do run "$name" "$server" "$kind"; done
    stop_servers
}

scenario ws-1000x100 ws --subscribers 1000 --channels 10 --rate 100 --payload 64 --duration "$DUR" --drain 5
scenario sse-1000x100 sse --subscribers 1000 --channels 10 --rate 100 --payload 64 --duration "$DUR" --drain 5
scenario longpoll-200 longpoll --subscribers 200 --channels 10 --rate 10 --payload 64 --duration "$DUR"
scenario idle-ws ws --subscribers "$IDLE" --channels 100 --rate 0 --duration 3 --source-ips 127.0.0.1-127.0.0.8
scenario idle-sse sse --subscribers "$IDLE" --channels 100 --rate 0 --duration 3 --source-ips 127.0.0.1-127.0.0.8

python3 - "$WORK" <<'PY'
import json, sys, os
work = sys.argv[1]
rows = []
for name in ["ws-1000x100", "sse-1000x100", "longpoll-200", "idle-ws", "idle-sse"]:
    for server in ["nchan", "pushwire"]:
        path = os.path.join(work, f"{name}.{server}.json")
        if not os.path.exists(path):
            continue
        r = json.load(open(path))
        t = r["total"]
        s = r.get("server") or {}
        cpu = s.get("cpu_us_per_delivery")
        rss = s.get("rss_per_connection_bytes")
        rows.append([
            name, server,
            f'{r["connections_open"]}',
            f'{t["delivered"]}/{t["expected"]}',
            f'{t["lost"]} ({t["lost_holes"]}+{t["lost_tail"]})', f'{t["duplicates"]}',
            f'{t["latency_us"]["p50"]/1000:.2f}', f'{t["latency_us"]["p99"]/1000:.2f}',
            f'{t["bytes_down_per_message"]:.1f}' if t["delivered"] else "-",
            f'{cpu:.2f}' if cpu is not None else "-",
            f'{s.get("rss_connected_bytes", 0)/1e6:.1f}',
            f'{rss:.0f}' if rss is not None else "-",
            "/".join(f"{v:.2f}" for v in r["client_cpu_us_per_message"]) if t["delivered"] else "-",
        ])
head = ["scenario", "server", "conns", "delivered/expected", "lost (holes+tail)", "dup", "p50 ms", "p99 ms",
        "B down/msg", "server CPU µs/delivery", "server RSS MB", "RSS B/conn", "client CPU µs/msg/thread"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for r in rows:
    print("| " + " | ".join(r) + " |")
PY
