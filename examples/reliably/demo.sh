#!/usr/bin/env bash
# Plays the Reliably guide's sequence and checks each step's outcome:
#   1. the healthy experiment with --hypothesis-strategy after-method-only: no
#      indicator exists yet, so the hypothesis is only checked after the method has
#      sent the first one (completed, exit 0);
#   2. the healthy experiment again, hypothesis before and after (completed, exit 0);
#   3. the unhealthy experiment: it sends a 90 % indicator, below the 99.9 %
#      objective, so the hypothesis after the method deviates (exit 1, as expected).
# The indicators file and the journals go to a temporary directory, removed at the
# end: the repository is left as it was.
#
# Run with (from anywhere; builds faultline first if needed):
#   bash examples/reliably/demo.sh
#
# FAULTLINE names the runner command (default ./target/release/faultline); to
# compare with the Chaos Toolkit (it needs PYTHONPATH=. to import reliability_utils):
#   FAULTLINE="/tmp/ctk/bin/chaos --no-version-check --no-log-file" PYTHONPATH=. bash examples/reliably/demo.sh
set -u

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
if [ -z "${FAULTLINE:-}" ] && [ ! -x "$root/target/release/faultline" ]; then
    (cd "$root" && cargo build --release) || exit 2
fi
read -r -a runner <<<"${FAULTLINE:-$root/target/release/faultline}"
if ! command -v "${runner[0]}" >/dev/null 2>&1; then
    echo "demo: ${runner[0]} not found" >&2
    exit 2
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export RELIABLY_INDICATORS_FILE="$work/reliably-indicators.jsonl"
# The python provider imports reliability_utils from the working directory.
cd "$here" || exit 2

status=0
# step NUMBER EXPECTED_EXIT WHY -- runner arguments...
step() {
    local n="$1" expected="$2" why="$3"
    shift 4
    echo "=== step $n: $why (expect exit $expected)"
    "${runner[@]}" run --journal-path "$work/journal-$n.json" "$@"
    local code=$?
    if [ "$code" -eq "$expected" ]; then
        echo "=== step $n: exit $code, as expected"
    else
        echo "=== step $n: exit $code, expected $expected"
        status=1
    fi
}

step 1 0 "healthy, first run: no indicator yet, so the hypothesis is checked after the method only" -- \
    --hypothesis-strategy after-method-only experiment-healthy.json
step 2 0 "healthy: the last indicator is Good (100 %), the objective (99.9 %) is met before and after" -- \
    experiment-healthy.json
step 3 1 "unhealthy: it sends a Bad indicator (90 %), so the objective is missed after the method: the run deviates" -- \
    experiment-unhealthy.json
echo "=== indicators recorded:"
cat "$RELIABLY_INDICATORS_FILE"

if [ "$status" -eq 0 ]; then
    echo "demo: OK (two healthy runs completed, the unhealthy one deviated as it should)"
else
    echo "demo: FAILED"
fi
exit "$status"
