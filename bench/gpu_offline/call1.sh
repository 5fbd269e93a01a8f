#!/usr/bin/env bash
# Device call one (see README.md): keep GGUF part one, install the carried wheels, run the smoke test.
# Carries .gpu/a: whl/*.whl, tok/ (SmolLM2's tokenizer files), part1.
set -o pipefail
mkdir -p /tmp/parts && cp .gpu/a/part1 /tmp/parts/part1 || exit 1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .gpu/a/whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee $OUT/gpu.txt
timeout -s INT "${SMOKE_SECONDS:-150}" python3 bench/gpu_offline/smoke.py .gpu/a/tok 2>&1 \
  | grep --line-buffered -v "Loading weights" | tee $OUT/smoke.log
