#!/usr/bin/env bash
# Trains @bmc/models' blood-smear detector with bmc itself and packs it into models/blood-smear/:
#   pnpm --filter @bmc/models train-model            (BUDGET=45 minutes by default)
# Steps: split lists (make-splits.mjs, no copies of images) -> bmc train (blood-smear.yaml, time budget)
# -> bmc export (ONNX with the recorded pixel scale and operating point) -> pack-model.mjs (checkpoint
# without optimizer state, model.json). The log goes to runs/models/train-model.log.
set -euo pipefail
cd "$(dirname "$0")/../../.."
BUDGET="${BUDGET:-45}"
RUNS="${RUNS:-runs/models}"
mkdir -p "$RUNS"
LOG="$RUNS/train-model.log"
node packages/models/train/make-splits.mjs > "$RUNS/splits.json"
{
  echo "started $(date -u +%FT%TZ) budget ${BUDGET} min"
  lscpu | grep -E '^(Model name|CPU\(s\)|Flags):' || true
  echo "load at start: $(cat /proc/loadavg)"
} | tee "$LOG"
start=$(date +%s)
node apps/train/bin/bmc.mjs train --config packages/models/train/blood-smear.yaml --time-budget "$BUDGET" \
  --runs "$RUNS" --no-progress 2>&1 | tee -a "$LOG"
RUN="$(ls -td "$RUNS"/blood-smear-* | head -1)"
echo "trained $RUN in $(( $(date +%s) - start )) s; load at end: $(cat /proc/loadavg)" | tee -a "$LOG"
node apps/train/bin/bmc.mjs export "$RUN" --out "$RUN/model.onnx" 2>&1 | tee -a "$LOG"
node packages/models/train/pack-model.mjs "$RUN" blood-smear 2>&1 | tee -a "$LOG"
