#!/usr/bin/env bash
# Plays the Reliably guide for real, and checks each step's outcome:
#   A. on the embedded store (a temporary file through FAULTLINE_STORE), native form:
#      slo sync of the guide's reliably.yaml; the healthy experiment with
#      --hypothesis-strategy after-method-only (no result yet: the hypothesis is only
#      checked after the method sent the first Good indicator; completed, exit 0);
#      slo report shows 100.00% ✓; the unhealthy experiment sends a Bad (90 %)
#      indicator, so slo_is_met fails after the method with the guide's table
#      (deviated, exit 1); slo report shows 90.00% ✓ ✕.
#   B. the same against `faultline serve` (a temporary store, a token made with
#      `faultline token create`), through FAULTLINE_STORE=http://HOST:PORT.
#   C. the guide's python form, unchanged but for the host: reliability_utils.py
#      PUTs its indicators to the server with `requests`, and slo_is_met reads
#      RELIABLY_HOST, RELIABLY_TOKEN and RELIABLY_ORG as the Reliably client does
#      (skipped, saying so, when python3 has no `requests`).
# Everything goes to a temporary directory, removed at the end (the server is
# stopped): the repository is left as it was.
#
# Run with (from anywhere; builds faultline first if needed):
#   bash examples/reliably/demo.sh
# FAULTLINE names the faultline binary (default ./target/release/faultline).
set -u

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
if [ -z "${FAULTLINE:-}" ] && [ ! -x "$root/target/release/faultline" ]; then
    (cd "$root" && cargo build --release) || exit 2
fi
faultline="${FAULTLINE:-$root/target/release/faultline}"
if ! command -v "$faultline" >/dev/null 2>&1; then
    echo "demo: $faultline not found" >&2
    exit 2
fi

work="$(mktemp -d)"
server=""
cleanup() {
    if [ -n "$server" ]; then
        kill -TERM "$server" 2>/dev/null
        wait "$server" 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT
# Whatever the caller's environment says, each part chooses its own store.
unset FAULTLINE_STORE FAULTLINE_TOKEN FAULTLINE_ORG RELIABLY_HOST RELIABLY_TOKEN RELIABLY_ORG

status=0
# step NAME EXPECTED_EXIT WHY -- faultline arguments...
step() {
    local n="$1" expected="$2" why="$3"
    shift 4
    echo "=== step $n: $why (expect exit $expected)"
    "$faultline" "$@"
    local code=$?
    if [ "$code" -eq "$expected" ]; then
        echo "=== step $n: exit $code, as expected"
    else
        echo "=== step $n: exit $code, expected $expected"
        status=1
    fi
}

# The guide's sequence with one form of the experiments, on the store the
# environment names. PART is A, B or C; the experiments are in the current folder.
guide() {
    local part="$1" healthy="$2" unhealthy="$3"
    step "$part.1" 0 "slo sync: the guide's objective" -- slo sync -f "$here/reliably.yaml"
    step "$part.2" 0 "healthy, first run: no result yet, so the hypothesis is checked after the method only" -- \
        run --journal-path "$work/journal-$part-2.json" --hypothesis-strategy after-method-only "$healthy"
    step "$part.3" 0 "slo report: 100.00% ✓" -- slo report
    step "$part.4" 1 "unhealthy: a Bad (90 %) indicator misses the 99.9 % objective, the run deviates with the table" -- \
        run --journal-path "$work/journal-$part-4.json" "$unhealthy"
    step "$part.5" 0 "slo report: 90.00% ✓ ✕" -- slo report
}

echo "=== A: the embedded store, native form"
cd "$here" || exit 2
FAULTLINE_STORE="$work/embedded.db" guide A experiment-healthy.json experiment-unhealthy.json

echo "=== B: faultline serve, native form"
served="$work/served.db"
token="$("$faultline" token create --org guide --store "$served")" || {
    echo "demo: faultline token create failed"
    exit 1
}
"$faultline" serve --listen 127.0.0.1:0 --store "$served" >"$work/serve.out" 2>"$work/serve.err" &
server=$!
# Wait for the server to say where it listens (port 0: the system picked one).
addr=""
for _ in $(seq 1 500); do
    addr="$(sed -n 's|^faultline serve: listening on http://\([^ ]*\).*|\1|p' "$work/serve.out")"
    [ -n "$addr" ] && break
    kill -0 "$server" 2>/dev/null || break
    sleep 0.02
done
if [ -z "$addr" ]; then
    echo "demo: faultline serve did not start:"
    cat "$work/serve.err"
    exit 1
fi
echo "=== faultline serve listens on $addr"
FAULTLINE_STORE="http://$addr" FAULTLINE_TOKEN="$token" FAULTLINE_ORG=guide \
    guide B experiment-healthy.json experiment-unhealthy.json

echo "=== C: faultline serve, the guide's python form"
if python3 -c "import requests" 2>/dev/null; then
    # A third organisation of the same server, so the report starts empty again.
    ctoken="$("$faultline" token create --org guide-python --store "$served")"
    cd "$here/python" || exit 2
    FAULTLINE_STORE="http://$addr" FAULTLINE_TOKEN="$ctoken" FAULTLINE_ORG=guide-python \
    RELIABLY_HOST="$addr" RELIABLY_TOKEN="$ctoken" RELIABLY_ORG=guide-python \
        guide C healthy-experiment.json unhealthy-experiment.json
else
    echo "=== C: skipped: python3 has no 'requests' (pip install requests)"
fi

if [ "$status" -eq 0 ]; then
    echo "demo: OK (healthy runs met the objective, unhealthy ones deviated with the table, on the embedded store and on faultline serve)"
else
    echo "demo: FAILED"
fi
exit "$status"
