#!/usr/bin/env bash
# Autobahn|Testsuite (the Python 3 port in ../shared/autobahn) against pushwire's /echo.
# Usage: .ci/autobahn.sh BINARY [CASES]   (CASES defaults to '*', i.e. 1.* to 10.*: the
# permessage-deflate cases 12.* and 13.* are excluded unless AB_EXCLUDE says otherwise, e.g.
# AB_EXCLUDE= .ci/autobahn.sh BINARY '12.*,13.*'). A case pattern is a regular expression
# matched at the start of the case id, '*' standing for '.*': end it with '$' to anchor it.
# Fails on any FAILED, NON-STRICT or MISSING case. The server runs with --max-message-size 16 MiB
# because cases 9.* send messages of up to 16 MiB (the default limit answers them with 1009).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$1"
cases="${2:-*}"
shared="${PUSHWIRE_SHARED:-../shared}"
out="${AB_OUTDIR:-target/autobahn}"
mkdir -p "$out"
log="$out/server.log"
"$bin" --addr 127.0.0.1:0 --no-demo --max-message-size 16777216 >"$out/listening" 2>"$log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
addr=""
for _ in $(seq 1 100); do
    addr="$(sed -n 's|^pushwire listening on http://||p' "$out/listening")"
    [ -n "$addr" ] && break
    sleep 0.1
done
if [ -z "$addr" ]; then
    echo "pushwire did not start"; cat "$log"; exit 1
fi
summary="$out/summary.txt"
status=0
OUTDIR="$out/reports" AGENT=pushwire EXCLUDE="${AB_EXCLUDE-12.*,13.*}" TIMEOUT="${AB_TIMEOUT:-600}" \
    bash "$shared/autobahn/run.sh" "ws://$addr/echo" "$cases" >"$summary" 2>&1 || status=$?
tail -n 12 "$summary"
line="$(grep '^autobahn:' "$summary" || true)"
if [ "$status" -ne 0 ] || [ -z "$line" ] || ! grep -q ' 0 NON-STRICT' <<<"$line" \
    || grep -q 'MISSING' <<<"$line"; then
    echo "autobahn: conformance gate failed (exit $status)"
    exit 1
fi
