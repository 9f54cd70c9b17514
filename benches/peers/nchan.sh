#!/usr/bin/env bash
# The same `pushwire load` scenarios against Nchan, against pushwire and against the floor, side
# by side.
#
#   bash benches/peers/nchan.sh            # a few minutes; prints the table BENCHMARKS.md quotes
#   SECONDS_PER_SCENARIO=5 IDLE=2000 bash benches/peers/nchan.sh   # a quicker pass
#   THREADS=1 …                            # subscriber threads of the load generator (default 2)
#   FLOOR=0 …                              # without the floor
#   PW_THREADS=2 …                         # pushwire's event loops (default 1, as Nchan's one worker)
#   ONLY="ws-1000x100 ws-100x2000" …       # only these scenarios
#   REPEAT=3 …                             # each scenario three times, interleaved (see below)
#
# A server's CPU per delivery moves by ±20 % from one 5 s run to the next on a shared machine, and
# the three servers of a scenario run one after another, so one slow moment can land on one of
# them. With REPEAT=N each scenario runs N times, each time with fresh servers and the servers'
# order rotated (nchan, pushwire, floor; then pushwire, floor, nchan; …); the table lists every
# run and the ratios compare each server's median run.
#
# The floor (benches/peers/floor.rs, built by `cargo bench --bench floor --no-run`) is a minimal
# single-threaded server that writes pushwire's bytes for each publish with one write per
# subscriber socket, straight from the publish handler: its CPU per delivery is about what the
# kernel charges for those writes, and every figure is also given as a ratio to it.
#
# Installs Debian's nginx and libnginx-mod-nchan with apt when missing. The servers listen on
# loopback ports, run as children of this script and are stopped by their PIDs. Load goes to
# 127.0.0.0/8 only.
set -euo pipefail
cd "$(dirname "$0")/../.."

DUR=${SECONDS_PER_SCENARIO:-10}
REPEAT=${REPEAT:-1}
IDLE=${IDLE:-10000}
THREADS=${THREADS:-2}
WORK=$(mktemp -d /tmp/pushwire-peers.XXXXXX)
# shellcheck source=benches/peers/common.sh
. benches/peers/common.sh

if [ ! -e /usr/share/nginx/modules/ngx_nchan_module.so ] || ! command -v nginx >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx libnginx-mod-nchan
fi
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# PUSHWIRE=path/to/pushwire skips the build; FLOOR_BIN=path/to/floor skips the floor's.
PW=$(pushwire_binary)
FLOOR=${FLOOR:-1}
FB=
if [ "$FLOOR" != 0 ]; then
    FB=$(floor_binary)
fi
SERVERS="nchan pushwire"
[ "$FLOOR" != 0 ] && SERVERS="nchan pushwire floor"

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
    "$PW" --addr 127.0.0.1:0 --threads "${PW_THREADS:-1}" --no-demo --max-connections 25000 --sse-heartbeat 600 --ws-ping-interval 600 \
        > "$WORK/pushwire.out" 2> "$WORK/pushwire.err" &
    PWPID=$!
    PIDS+=("$PWPID")
    PWADDR=$(listening_addr "$WORK/pushwire.out" pushwire)
    FLPID= FLADDR=
    if [ "$FLOOR" != 0 ]; then
        "$FB" --serve 127.0.0.1:0 > "$WORK/floor.out" 2> "$WORK/floor.err" &
        FLPID=$!
        PIDS+=("$FLPID")
        FLADDR=$(listening_addr "$WORK/floor.out" floor)
        [ -n "$FLADDR" ] || { echo "the floor did not start: $(cat "$WORK/floor.err")" >&2; exit 1; }
    fi
    WORKER=
    for _ in $(seq 100); do
        WORKER=$(pgrep -P "$NGINX" | head -1 || true)
        code=$(curl -s -o /dev/null -w '%{http_code}' -m 1 "http://127.0.0.1:$NPORT/pub/probe" || true)
        [ -n "$WORKER" ] && [ "$code" != 000 ] && break
        sleep 0.1
    done
    [ -n "$WORKER" ] || { echo "nginx did not start: $(cat "$WORK/nchan/error.log" 2>/dev/null)" >&2; exit 1; }
    echo "nchan: nginx $(nginx -v 2>&1 | sed 's#.*/##'), worker pid $WORKER, port $NPORT; pushwire pid $PWPID at $PWADDR${FLPID:+; floor pid $FLPID at $FLADDR}" >&2
}

# stop_servers NAME — the floor prints on SIGTERM whether any write had to wait; kept per scenario.
stop_servers() {
    kill "$NGINX" "$PWPID" $FLPID 2>/dev/null || true
    wait "$NGINX" "$PWPID" $FLPID 2>/dev/null || true
    [ -z "$FLPID" ] || cp "$WORK/floor.err" "$WORK/$1.floor.err"
    PIDS=()
}

# run NAME SERVER REP ARGS… — one scenario against one server, JSON kept.
run() {
    local name=$1 server=$2 rep=$3
    shift 3
    local pub sub pid
    local addr=$PWADDR
    case "$server" in
        nchan) pub="http://127.0.0.1:$NPORT/pub/{channel}" pid=$WORKER ;;
        pushwire) pub="http://$PWADDR/pub/{channel}" pid=$PWPID ;;
        floor) pub="http://$FLADDR/pub/{channel}" pid=$FLPID addr=$FLADDR ;;
    esac
    local subs=()
    for kind in "$@"; do
        case "$server:$kind" in
            nchan:ws) subs+=(--sub-url "ws=ws://127.0.0.1:$NPORT/sub/{channel}") ;;
            nchan:*) subs+=(--sub-url "$kind=http://127.0.0.1:$NPORT/sub/{channel}") ;;
            *:ws) subs+=(--sub-url "ws=ws://$addr/ws/{channel}?since=0") ;;
            *:sse) subs+=(--sub-url "sse=http://$addr/sse/{channel}?last_event_id=0") ;;
            *:longpoll) subs+=(--sub-url "longpoll=http://$addr/longpoll/{channel}?since=0") ;;
        esac
    done
    echo "== $name on $server (run $rep)" >&2
    "$PW" load --pub-url "$pub" "${subs[@]}" --server-pid "$pid" --threads "$THREADS" \
        --channel-prefix "$name-$RANDOM-" $SCENARIO_ARGS --json > "$WORK/$name.$server.$rep.json"
}

scenario() {
    local name=$1 kind=$2
    shift 2
    if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $name "* ]]; then
        return
    fi
    SCENARIO_ARGS="$*"
    local servers=($SERVERS)
    local n=${#servers[@]} rep i
    for rep in $(seq "$REPEAT"); do
        start_servers
        for i in $(seq 0 $((n - 1))); do
            run "$name" "${servers[$(((i + rep - 1) % n))]}" "$rep" "$kind"
        done
        stop_servers "$name"
    done
}

scenario ws-100x2000 ws --subscribers 100 --channels 1 --rate 2000 --payload 64 --duration "$DUR" --drain 5
scenario ws-1000x100 ws --subscribers 1000 --channels 10 --rate 100 --payload 64 --duration "$DUR" --drain 5
scenario sse-1000x100 sse --subscribers 1000 --channels 10 --rate 100 --payload 64 --duration "$DUR" --drain 5
scenario longpoll-200 longpoll --subscribers 200 --channels 10 --rate 10 --payload 64 --duration "$DUR"
# Messages faster than a poll's round trip: an answer carries every message since the cursor.
scenario longpoll-20x2000 longpoll --subscribers 20 --channels 1 --rate 2000 --payload 64 --duration "$DUR" --drain 5
scenario idle-ws ws --subscribers "$IDLE" --channels 100 --rate 0 --duration 3 --source-ips 127.0.0.1-127.0.0.8
scenario idle-sse sse --subscribers "$IDLE" --channels 100 --rate 0 --duration 3 --source-ips 127.0.0.1-127.0.0.8

python3 - "$WORK" "$REPEAT" <<'PY'
import json, sys, os, statistics
work, repeat = sys.argv[1], int(sys.argv[2])
NAMES = ["ws-1000x100", "ws-100x2000", "sse-1000x100", "longpoll-200", "longpoll-20x2000", "idle-ws", "idle-sse"]

def runs(name, server):
    """Every run of one server in one scenario, in run order."""
    out = []
    for rep in range(1, repeat + 1):
        path = os.path.join(work, f"{name}.{server}.{rep}.json")
        if os.path.exists(path):
            out.append((rep, json.load(open(path))))
    return out

rows = []
for name in NAMES:
    for server in ["nchan", "pushwire", "floor"]:
        for rep, r in runs(name, server):
            t = r["total"]
            s = r.get("server") or {}
            cpu = s.get("cpu_us_per_delivery")
            rss = s.get("rss_per_connection_bytes")
            rows.append([
                name, server, f"{rep}",
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
head = ["scenario", "server", "run", "conns", "delivered/expected", "lost (holes+tail)", "dup", "p50 ms", "p99 ms",
        "B down/msg", "server CPU µs/delivery", "server RSS MB", "RSS B/conn", "client CPU µs/msg/thread"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for r in rows:
    print("| " + " | ".join(r) + " |")

# pushwire as a multiple of Nchan and of the floor: server CPU per delivery and p99 latency, each
# the median of the server's runs.
def figures(name, server):
    got = runs(name, server)
    if not got:
        return None
    def median(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None
    cpu = median((r.get("server") or {}).get("cpu_us_per_delivery") for _, r in got)
    p99 = median(r["total"]["latency_us"]["p99"] if r["total"]["delivered"] else None for _, r in got)
    return (cpu, p99)
def ratio(a, b):
    return f"{a / b:.2f}×" if a is not None and b else "-"
ratios = []
machine = []
for name in NAMES:
    pw, nc, fl = (figures(name, s) for s in ["pushwire", "nchan", "floor"])
    if pw is None or pw[0] is None:
        continue
    nc, fl = nc or (None, None), fl or (None, None)
    ratios.append([name, ratio(pw[0], nc[0]), ratio(pw[0], fl[0]), ratio(pw[1], nc[1]), ratio(pw[1], fl[1])])
    machine.append({"scenario": name, "cpu_vs_nchan": pw[0] / nc[0] if pw[0] and nc[0] else None,
                    "cpu_vs_floor": pw[0] / fl[0] if pw[0] and fl[0] else None,
                    "p99_vs_nchan": pw[1] / nc[1] if pw[1] and nc[1] else None,
                    "p99_vs_floor": pw[1] / fl[1] if pw[1] and fl[1] else None})
if ratios:
    print()
    if repeat > 1:
        print(f"Each server's median of its {repeat} runs:")
        print()
    head = ["scenario", "CPU/delivery pushwire/nchan", "CPU/delivery pushwire/floor", "p99 pushwire/nchan", "p99 pushwire/floor"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in ratios:
        print("| " + " | ".join(r) + " |")
notes = []
for name in NAMES:
    path = os.path.join(work, f"{name}.floor.err")
    if os.path.exists(path):
        lines = [l.strip() for l in open(path) if l.startswith("floor:")]
        if lines:
            notes.append(f"{name}: {lines[-1]}")
if notes:
    print()
    for n in notes:
        print("- " + n)
# One line per run for scripts that sum up several rounds.
print()
print("RATIOS " + json.dumps(machine))
PY
