#!/usr/bin/env bash
# Runs the exchange-file experiment against both variants of the service, each
# on a free port with its exchange file in a temporary directory, and checks
# the outcome: the broken service must deviate (exit 1), the fixed one must
# complete (exit 0). Stops every service it started.
#
# Run with (from the repository root; builds faultline first if needed):
#   bash examples/exchange-file/demo.sh
#
# FAULTLINE names the runner command (default ./target/release/faultline); to
# compare with the Chaos Toolkit:
#   FAULTLINE="/tmp/ctk/bin/chaos --no-version-check --no-log-file" bash examples/exchange-file/demo.sh
set -u

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/../.." || exit 2
if [ -z "${FAULTLINE:-}" ] && [ ! -x ./target/release/faultline ]; then
    cargo build --release || exit 2
fi
read -r -a runner <<<"${FAULTLINE:-./target/release/faultline}"
if ! command -v "${runner[0]}" >/dev/null 2>&1; then
    echo "demo: ${runner[0]} not found" >&2
    exit 2
fi

work="$(mktemp -d)"
service_pid=""
cleanup() {
    if [ -n "$service_pid" ]; then kill "$service_pid" 2>/dev/null; wait "$service_pid" 2>/dev/null; fi
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# run_variant NAME EXPECTED_EXIT [service flags...]
run_variant() {
    local name="$1" expected="$2"
    shift 2
    local port
    port="$(free_port)"
    export EXCHANGE_FILE="$work/$name/exchange.dat"
    export SERVICE_URL="http://127.0.0.1:$port/"
    mkdir -p "$work/$name"

    # A long rewrite interval, so the service cannot recreate the file mid-run.
    python3 "$here/service.py" "$@" --port "$port" --file "$EXCHANGE_FILE" --interval 3600 \
        >"$work/$name/service.log" 2>&1 &
    service_pid=$!
    for _ in $(seq 50); do
        python3 -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
            "$SERVICE_URL" 2>/dev/null && break
        sleep 0.1
    done

    echo "=== $name service on $SERVICE_URL (expect exit $expected)"
    "${runner[@]}" run --journal-path "$work/$name/journal.json" "$here/experiment.json"
    local code=$?

    kill "$service_pid" 2>/dev/null
    wait "$service_pid" 2>/dev/null
    service_pid=""

    if [ -f "$EXCHANGE_FILE" ]; then restored="restored"; else restored="NOT restored"; fi
    echo "=== $name: exit $code (expected $expected), exchange file $restored by the rollback"
    [ "$code" -eq "$expected" ] && [ -f "$EXCHANGE_FILE" ]
}

status=0
run_variant broken 1 || status=1
run_variant fixed 0 --fixed || status=1
if [ "$status" -eq 0 ]; then echo "demo: OK"; else echo "demo: FAILED"; fi
exit "$status"
