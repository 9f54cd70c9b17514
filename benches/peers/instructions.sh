#!/usr/bin/env bash
# User-space instructions per delivery, pushwire against the floor, counted by callgrind.
#
#   bash benches/peers/instructions.sh              # three scenarios, about two minutes
#   SCENARIOS=longpoll bash benches/peers/instructions.sh
#   PUSHWIRE=path/to/pushwire FLOOR_BIN=path/to/floor …   # skip the builds
#
# CPU time per delivery (nchan.sh) moves by ±20 % from run to run on a shared machine; this count
# does not, so it shows what a change to pushwire's own code did, to a few percent, in one run. It
# is blind to the kernel (system calls run natively under valgrind and are not counted) and to
# cache misses, which is most of a delivery's cost: read it beside nchan.sh, not instead of it.
#
# Each server runs under `valgrind --tool=callgrind` and `pushwire load` drives it. After a
# warm-up the counters are zeroed (`callgrind_control -z`), and a few seconds later dumped (`-d`).
# Every delivery and every publish answer is one `send` in both servers (checked with `perf stat`
# on the syscalls, BENCHMARKS.md), so the dump's `send` calls split into deliveries and publishes
# in the run's own proportion (delivered / published). Scenarios: nchan.sh's, with the rate of the
# streams cut to a fifth (valgrind runs the server tens of times slower) and the same fan-out of a
# publish (100 subscribers a channel), so a publish's own cost is shared as it is there:
#   longpoll  200 long-pollers, 10 channels at 10 msg/s each (every answer carries one message)
#   ws        1 000 WebSocket subscribers, 10 channels at 20 msg/s each
#   sse       1 000 SSE subscribers, 10 channels at 20 msg/s each
#
# Installs Debian's valgrind with apt when missing. Load goes to 127.0.0.1 only; the servers run as
# children of this script and are stopped by their PIDs.
set -euo pipefail
cd "$(dirname "$0")/../.."

SCENARIOS=${SCENARIOS:-longpoll ws sse}
WARM=${WARM:-4}
WINDOW=${WINDOW:-6}
WORK=$(mktemp -d /tmp/pushwire-instructions.XXXXXX)
# shellcheck source=benches/peers/common.sh
. benches/peers/common.sh

if ! command -v valgrind >/dev/null || ! command -v callgrind_control >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q valgrind
fi
PW=$(pushwire_binary)
FB=$(floor_binary)

# measure SCENARIO SERVER: one server under callgrind; prints a JSON line.
measure() {
    local scenario=$1 server=$2 out="$WORK/$1.$2"
    case "$server" in
        pushwire) valgrind --tool=callgrind --callgrind-out-file="$out.cg" "$PW" --addr 127.0.0.1:0 \
            --threads 1 --no-demo --sse-heartbeat 600 --ws-ping-interval 600 > "$out.out" 2> "$out.err" & ;;
        floor) valgrind --tool=callgrind --callgrind-out-file="$out.cg" "$FB" --serve 127.0.0.1:0 \
            > "$out.out" 2> "$out.err" & ;;
    esac
    local pid=$!
    PIDS+=("$pid")
    local addr
    addr=$(listening_addr "$out.out" "$server" 300)
    [ -n "$addr" ] || { echo "$server did not start under valgrind: $(tail -3 "$out.err")" >&2; exit 1; }
    local sub rate subscribers=1000
    case "$scenario" in
        longpoll) sub="longpoll=http://$addr/longpoll/{channel}?since=0" rate=10 subscribers=200 ;;
        ws) sub="ws=ws://$addr/ws/{channel}?since=0" rate=20 ;;
        sse) sub="sse=http://$addr/sse/{channel}?last_event_id=0" rate=20 ;;
    esac
    "$PW" load --pub-url "http://$addr/pub/{channel}" --sub-url "$sub" --subscribers "$subscribers" \
        --channels 10 --rate "$rate" --payload 64 --duration $((WARM + WINDOW + 2)) --threads 2 \
        --json > "$out.load.json" &
    local load=$!
    PIDS+=("$load")
    sleep "$WARM"
    callgrind_control -z "$pid" > /dev/null 2>&1
    sleep "$WINDOW"
    callgrind_control -d "$pid" > /dev/null 2>&1
    wait "$load"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    PIDS=()
    python3 - "$scenario" "$server" "$out.cg.1" "$out.load.json" <<'PY'
import json, re, sys
scenario, server, dump, load = sys.argv[1:]
text = open(dump).read()
total = int(re.search(r"^(?:summary|totals): (\d+)", text, re.M).group(1))
# Callgrind names a function once in full, then by its number alone.
names = {}
for m in re.finditer(r"^c?fn=\((\d+)\)(?: (.*))?$", text, re.M):
    if m.group(2):
        names[m.group(1)] = m.group(2)
lines = text.split("\n")
sends = 0
for i, line in enumerate(lines):
    m = re.match(r"cfn=\((\d+)\)", line)
    if m and names.get(m.group(1)) in ("send", "__send", "__libc_send"):
        sends += int(re.match(r"calls=(\d+)", lines[i + 1]).group(1))
run = json.load(open(load))
delivered, published = run["total"]["delivered"], run["published"]
deliveries = sends * delivered / (delivered + published)
print(json.dumps({"scenario": scenario, "server": server, "instructions": total, "sends": sends,
                  "deliveries": round(deliveries), "lost": run["total"]["lost"],
                  "per_delivery": total / deliveries if deliveries else None}))
PY
}

for scenario in $SCENARIOS; do
    for server in pushwire floor; do
        echo "== $scenario on $server (callgrind)" >&2
        measure "$scenario" "$server" >> "$WORK/results.jsonl"
    done
done
python3 - "$WORK/results.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| scenario | server | instructions | deliveries | lost | instructions per delivery |")
print("|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['scenario']} | {r['server']} | {r['instructions']:,} | {r['deliveries']:,} | {r['lost']} | {r['per_delivery']:,.0f} |")
by = {(r["scenario"], r["server"]): r["per_delivery"] for r in rows}
print()
for scenario in dict.fromkeys(r["scenario"] for r in rows):
    pw, fl = by.get((scenario, "pushwire")), by.get((scenario, "floor"))
    if pw and fl:
        print(f"- {scenario}: pushwire {pw:,.0f} / floor {fl:,.0f} = {pw / fl:.2f}× the floor's user-space instructions")
PY
