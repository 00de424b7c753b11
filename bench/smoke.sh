#!/usr/bin/env bash
# Every benchmark once with tiny sizes, for CI: checks that each still runs end to end
# (< 60 s in all on 2 cores). Exits non-zero if a script fails; a missed performance
# target is NOT a failure here (the figures at these sizes mean nothing).
#
#   bash bench/smoke.sh
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sc-bench-smoke.XXXXXX")
failed=()
started=$(date +%s)

# Every process a benchmark starts inherits this mark, so what a killed benchmark left running
# (its services run in their own sessions) is found and stopped.
MARK="SC_BENCH_SMOKE=$$-$RANDOM"

stop_leftovers() {
  local p
  for p in /proc/[0-9]*; do
    if { tr '\0' '\n' <"$p/environ"; } 2>/dev/null | grep -qx "$MARK"; then
      kill -9 "${p#/proc/}" 2>/dev/null && echo "      stopped leftover process ${p#/proc/}"
    fi
  done
}

run() {
  local name=$1 limit=$2
  shift 2
  local t0=$(date +%s)
  if env "$MARK" timeout --signal=INT --kill-after=15 "$limit" "$PY" "$@" >"$LOG_DIR/$name.log" 2>&1; then
    echo "ok    $name ($(( $(date +%s) - t0 )) s)"
  else
    echo "FAIL  $name (exit $?, $(( $(date +%s) - t0 )) s); last lines of $LOG_DIR/$name.log:"
    tail -n 25 "$LOG_DIR/$name.log" | sed 's/^/      /'
    failed+=("$name")
  fi
  stop_leftovers
}

run webhook_throughput 60 bench/webhook_throughput.py --rounds 1 --connections 4 --service-conversations 8 \
    --bare-requests 400 --conversations 12
run matching_scaling 60 bench/matching_scaling.py --sizes 200,2000 --queries 10 --scan-queries 2
run outbound_pipeline 60 bench/outbound_pipeline.py --texts 4 --baseline-texts 2
run offer_latency 60 bench/offer_latency.py --rounds 3 --drivers 30 --api-drivers 3
run expiry_precision 60 bench/expiry_precision.py --timeout 1 --expiries 3 --rescues 2 --drivers 3 --baseline-jobs 2
run rescue_cost 60 bench/rescue_cost.py --rescues 1 --rounds 1 --idle 1
run store_growth 60 bench/store_growth.py --sizes 100,400 --calls 3
run burst 60 bench/burst.py --requests 4 --drivers 4 --window 2 --answer-delay 0.2 --job-seconds 0.2 \
    --baseline-rounds 2 --tail 40

echo "smoke: $(( $(date +%s) - started )) s in all; logs in $LOG_DIR"
if [ ${#failed[@]} -gt 0 ]; then
  echo "smoke: failed: ${failed[*]}"
  exit 1
fi
