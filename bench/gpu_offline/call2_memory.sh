#!/usr/bin/env bash
# Device call two for issue 23's numbers (see README.md; call1.sh first, same warm machine): join and
# export the model as call2.sh does, then run side by side on the one GPU, each for at most BENCH_SECONDS:
#   the public sets (memory, facts) and our two dev sets with cpu-default (fp32 on CUDA), the dev sets
#   again with the SEAL outer loop and model-written questions (templates vs SEAL), and the backlog curve
#   (20 / 60 / 200 episodes). results.json is rewritten after every night, so a cut run keeps its nights.
# Carries .gpu/b: part2, part.sha256, shared/eval/*.jsonl. Brings back grid.tgz (no weights) and gpu.txt.
set -o pipefail
cat /tmp/parts/part1 .gpu/b/part2 > /tmp/parts/smol.gguf || exit 1
(cd /tmp/parts && sha256sum -c "$OLDPWD/.gpu/b/part.sha256") || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python3 bench/gpu_offline/export_gguf.py /tmp/parts/smol.gguf /tmp/model 2>&1 | grep -v "Loading weights" || exit 1
S=${BENCH_SECONDS:-480}
E=.gpu/b/shared/eval
ON_GPU=(--set device=cuda --set dtype=float32 --set night_seconds=null --set torch_threads=2)
SEAL=(--set seal_outer_loop=true --set model_questions=2)
mkdir -p /tmp/g
run() {  # name, dataset, extra options
  local name=$1 data=$2; shift 2
  timeout -s INT "$S" python3 -m trainer.benchmark --dataset "$data" --general $E/general-public.jsonl --nights 3 \
    --out /tmp/g/$name --config cpu-default --model /tmp/model "${ON_GPU[@]}" "$@" > /tmp/g/$name.log 2>&1
  echo "$name exit $?" >> /tmp/g/exits.txt
}
run memory $E/memory-public.jsonl &
run facts $E/facts-public.jsonl &
run dev-a bench/data/memory-dev-a.jsonl &
run dev-b bench/data/memory-dev-b.jsonl &
run dev-a-seal bench/data/memory-dev-a.jsonl "${SEAL[@]}" &
run dev-b-seal bench/data/memory-dev-b.jsonl "${SEAL[@]}" &
(timeout -s INT "$S" python3 bench/backlog_curve.py --sizes 20 60 200 --out /tmp/g/curve --config cpu-default \
   --model /tmp/model "${ON_GPU[@]}" > /tmp/g/curve.log 2>&1; echo "curve exit $?" >> /tmp/g/exits.txt) &
sleep 60; nvidia-smi --query-gpu=name,memory.total,memory.used,utilization.gpu,driver_version --format=csv \
  > $OUT/gpu.txt 2>&1
wait
cat /tmp/g/exits.txt
for f in /tmp/g/*/results.json; do python3 -c "
import json; r = json.load(open('$f'))
print('$f', {k: r.get(k) for k in ('in_context_per_night', 'closed_book_after', 'retention', 'general_after',
                                  'seconds', 'accepted', 'nights_done')})"; done
[ -f /tmp/g/curve/curve.md ] && cat /tmp/g/curve/curve.md
tar czf $OUT/grid.tgz --exclude='*.safetensors' --exclude='*.bin' --exclude='*.pt' -C /tmp g
ls -la $OUT
