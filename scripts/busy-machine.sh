#!/usr/bin/env bash
# The two commands on a busy machine: `make test`, then `meetpilot demo`, while two CPU-burning
# processes run beside them the whole time (on two cores, as if another build shared the machine).
# Exits non-zero if either fails, or if the demo's console output holds a JSON line.
#
#   scripts/busy-machine.sh                 # burners stop after BURN_SECONDS (default 3600) at most
#   BURNERS=4 scripts/busy-machine.sh       # a busier machine
#   DEMO_ARGS="--meetings 30" scripts/busy-machine.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BURNERS="${BURNERS:-2}"
BURN_SECONDS="${BURN_SECONDS:-3600}"
OUT="${DEMO_OUT:-.demo-busy}"
burners=()

stop_burners() {
    for pid in "${burners[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${burners[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap stop_burners EXIT

for _ in $(seq "$BURNERS"); do
    timeout "$BURN_SECONDS" sh -c 'while :; do :; done' &
    burners+=("$!")
done
echo "busy-machine: $BURNERS CPU burners running (pids ${burners[*]}) on $(nproc) cores"

failed=0
started=$(date +%s)
if make test; then test_result=passed; else test_result=FAILED; failed=1; fi
test_seconds=$(($(date +%s) - started))
echo "busy-machine: make test $test_result in ${test_seconds} s (load average $(cut -d' ' -f1-3 /proc/loadavg))"

started=$(date +%s)
console="$(mktemp)"
# shellcheck disable=SC2086 # DEMO_ARGS is a list of options, split on purpose
if .venv/bin/meetpilot demo --out "$OUT" ${DEMO_ARGS:-} | tee "$console"; then demo_result=passed; else demo_result=FAILED; failed=1; fi
demo_seconds=$(($(date +%s) - started))
if grep -q '^[[:space:]]*[{[]' "$console"; then
    echo "busy-machine: the demo's console output holds JSON lines (they belong in $OUT/demo.log)"
    demo_result=FAILED
    failed=1
fi
if ! grep -q '^demo: ' "$console"; then
    echo "busy-machine: no line starting 'demo: ' in the demo's console output"
    demo_result=FAILED
    failed=1
fi
rm -f "$console"
echo "busy-machine: meetpilot demo $demo_result in ${demo_seconds} s (load average $(cut -d' ' -f1-3 /proc/loadavg))"
exit "$failed"
