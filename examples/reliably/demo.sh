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
#   D. a real service (examples/demo-service) scraped by a real Prometheus: a fault
#      rate, traffic, the guide's indicator; then slo_is_met from the store and the
#      slo probe from Prometheus (openslo.yaml) agree: met without faults, not met
#      with 10 % errors (skipped, saying so, without prometheus or python3).
# Everything goes to a temporary directory, removed at the end (the server is
# stopped): the repository is left as it was.
#
# Run with (from anywhere; builds faultline first if needed):
#   bash examples/reliably/demo.sh
# FAULTLINE names the faultline binary (default ./target/release/faultline), DEMO_SERVICE
# the demo service's (default ./target/release/examples/demo-service).
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

echo "=== D: a real service and a real Prometheus: the store's verdict and Prometheus' agree"
# The demo service (examples/demo-service) serves /api/orders and its own metrics; a
# Prometheus scrapes it every second; experiment-prometheus.json sets a fault rate,
# sends traffic, pushes the guide's indicator, then judges the objective twice after
# the method: slo_is_met from the store, and the slo probe from Prometheus
# (openslo.yaml: the same 99.9 % over the service's own request counters).
demo_service="${DEMO_SERVICE:-$root/target/release/examples/demo-service}"
if ! command -v prometheus >/dev/null 2>&1 || ! command -v python3 >/dev/null 2>&1; then
    if [ -n "${CI:-}${FAULTLINE_REQUIRE_SERVERS:-}" ]; then
        echo "demo: part D needs prometheus and python3"
        status=1
    else
        echo "=== D: skipped: prometheus or python3 is not installed (apt-get install prometheus python3)"
    fi
else
    if [ ! -x "$demo_service" ]; then
        (cd "$root" && cargo build --release --example demo-service) || exit 2
    fi
    OTEL_TRACES_EXPORTER=none "$demo_service" --port 0 >"$work/demo.out" 2>"$work/demo.err" &
    demo=$!
    promp=""
    cleanup_d() {
        kill -TERM "$demo" 2>/dev/null; wait "$demo" 2>/dev/null
        [ -n "$promp" ] && { kill -TERM "$promp" 2>/dev/null; wait "$promp" 2>/dev/null; }
    }
    trap 'cleanup_d; cleanup' EXIT
    daddr=""
    for _ in $(seq 1 500); do
        daddr="$(sed -n 's|^listening on \([0-9.:]*\).*|\1|p' "$work/demo.out")"
        [ -n "$daddr" ] && break
        kill -0 "$demo" 2>/dev/null || break
        sleep 0.02
    done
    pport="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    mkdir -p "$work/prom"
    printf 'global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n  - job_name: demo\n    static_configs: [{targets: ["%s"]}]\n' "$daddr" >"$work/prom/prometheus.yml"
    prometheus --config.file="$work/prom/prometheus.yml" --storage.tsdb.path="$work/prom/data" \
        --web.listen-address="127.0.0.1:$pport" >"$work/prom/out" 2>&1 &
    promp=$!
    # Wait (at most 60 s) until Prometheus holds the service's request counter: a few
    # requests first, so the series exist before the experiments' windows open.
    ready=""
    for _ in $(seq 1 300); do
        python3 - "$daddr" "$pport" <<'PY' && { ready=1; break; }
import json, sys, urllib.request as u, urllib.parse as p
d, port = sys.argv[1], sys.argv[2]
for _ in range(5):
    u.urlopen(f"http://{d}/api/orders").read()
try:
    q = p.quote('demo_http_requests_total{route="/api/orders"}')
    r = json.load(u.urlopen(f"http://127.0.0.1:{port}/api/v1/query?query={q}"))
    sys.exit(0 if r["data"]["result"] else 1)
except Exception:
    sys.exit(1)
PY
        sleep 0.2
    done
    if [ -z "$daddr" ] || [ -z "$ready" ]; then
        echo "demo: the demo service or Prometheus did not start:"
        cat "$work/demo.err" "$work/prom/out" | tail -20
        exit 1
    fi
    echo "=== the demo service listens on $daddr, Prometheus on 127.0.0.1:$pport"
    export DEMO_URL="http://$daddr" PROMETHEUS_URL="http://127.0.0.1:$pport"
    cd "$here" || exit 2
    # verdict JOURNAL: the Prometheus probe's verdict, from the journal's evidence.
    verdict() {
        python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["steady_states"]["after"]["probes"][0]["evidence"]["verdict"])' "$1" 2>/dev/null
    }
    FAULTLINE_STORE="$work/prometheus.db" step D.1 0 "slo sync: the guide's objective" -- slo sync -f "$here/reliably.yaml"
    FAULTLINE_STORE="$work/prometheus.db" ERROR_RATE=0 PERCENT=100 step D.2 0 \
        "no fault: the store and Prometheus both say met" -- \
        run --journal-path "$work/journal-D-2.json" --hypothesis-strategy after-method-only experiment-prometheus.json
    echo "=== D.2: Prometheus verdict: $(verdict "$work/journal-D-2.json")"
    FAULTLINE_STORE="$work/prometheus.db" ERROR_RATE=0.1 PERCENT=90 step D.3 1 \
        "10 % errors: Prometheus says not met (and so does the store), the run deviates" -- \
        run --journal-path "$work/journal-D-3.json" --hypothesis-strategy after-method-only experiment-prometheus.json
    echo "=== D.3: Prometheus verdict: $(verdict "$work/journal-D-3.json")"
    FAULTLINE_STORE="$work/prometheus.db" step D.4 0 "slo report: the store's verdict, 90.00% ✓ ✕" -- slo report
    [ "$(verdict "$work/journal-D-2.json")" = met ] || status=1
    [ "$(verdict "$work/journal-D-3.json")" = not_met ] || status=1
    cleanup_d
    trap cleanup EXIT
fi

if [ "$status" -eq 0 ]; then
    echo "demo: OK (healthy runs met the objective, unhealthy ones deviated with the table, on the embedded store, on faultline serve, and judged from Prometheus)"
else
    echo "demo: FAILED"
fi
exit "$status"
