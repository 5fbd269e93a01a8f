#!/usr/bin/env bash
# bash bench/eval_public.sh [OUT] [CONFIG]
# The sleep benchmark on the public set (shared/eval), 3 nights, the way docs/benchmarks.md was measured.
set -euo pipefail
OUT=${1:-runs/eval-public}
CONFIG=${2:-cpu-default}
SHARED=${REVERIE_SHARED:-../shared}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# `reverie eval` exports the bundled model first when this checkout has none (python -m trainer.benchmark
# alone needs --model or the test suite's .cache/models).
exec .venv/bin/reverie eval --dataset "$SHARED/eval/facts-public.jsonl" \
    --general "$SHARED/eval/general-public.jsonl" --nights 3 --out "$OUT" --config "$CONFIG" "${@:3}"
