# Sourced by benches/peers/nchan.sh and benches/peers/instructions.sh: the servers they start are
# their children, stopped by PID on exit; where pushwire and the floor are; when a server listens.

# Every child server's PID; each is killed when the script exits, however it exits.
PIDS=()
stop_children() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop_children EXIT

# pushwire_binary: $PUSHWIRE when set, else a fresh release build.
pushwire_binary() {
    if [ -n "${PUSHWIRE:-}" ]; then
        echo "$PUSHWIRE"
        return
    fi
    # `set -e` does not reach into `$(…)`: a failed build must fail the caller by itself.
    cargo build --release -q >&2 || return 1
    echo target/release/pushwire
}

# floor_binary: $FLOOR_BIN when set, else the floor bench built (cargo says where its executable is).
floor_binary() {
    if [ -n "${FLOOR_BIN:-}" ]; then
        echo "$FLOOR_BIN"
        return
    fi
    local fb
    fb=$(cargo bench --bench floor --no-run -q --message-format=json | python3 -c '
import json, sys
for line in sys.stdin:
    a = json.loads(line)
    if a.get("reason") == "compiler-artifact" and a["target"]["name"] == "floor" and a.get("executable"):
        print(a["executable"])')
    [ -x "$fb" ] || { echo "the floor did not build" >&2; return 1; }
    echo "$fb"
}

# listening_addr FILE NAME [TRIES]: the address in FILE's "NAME listening on http://ADDR" line, once
# the server has printed it (waits up to TRIES × 0.1 s, 10 s by default; empty if it never does).
listening_addr() {
    for _ in $(seq "${3:-100}"); do
        grep -q listening "$1" 2>/dev/null && break
        sleep 0.1
    done
    sed -n "s#$2 listening on http://##p" "$1"
}
