#!/usr/bin/env bash
# Device call two (see README.md), on the machine call one left warm: join the GGUF, export it, run the
# benchmark for at most BENCH_SECONDS, and copy what it wrote so far under $OUT.
# Carries .gpu/b: part2, part.sha256, shared/eval/*.jsonl.
set -o pipefail
cat /tmp/parts/part1 .gpu/b/part2 > /tmp/parts/smol.gguf || exit 1
(cd /tmp/parts && sha256sum -c "$OLDPWD/.gpu/b/part.sha256") || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python3 bench/gpu_offline/export_gguf.py /tmp/parts/smol.gguf /tmp/model 2>&1 | grep -v "Loading weights" || exit 1
timeout -s INT "${BENCH_SECONDS:-480}" python3 -m trainer.benchmark \
  --dataset .gpu/b/shared/eval/facts-public.jsonl --general .gpu/b/shared/eval/general-public.jsonl \
  --nights 3 --out /tmp/gpu-run --config gpu-default --model /tmp/model > /tmp/gpu-run.log 2>&1
echo "benchmark exit $?" | tee /tmp/gpu-run.rc
grep -v "Loading weights" /tmp/gpu-run.log | tail -40
bash bench/gpu_offline/collect.sh
