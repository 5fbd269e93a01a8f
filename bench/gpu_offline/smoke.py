"""Device smoke test: `reverie eval` end to end on a tiny random Llama on CUDA in bf16, with gpu-default.

    PYTHONPATH=$PWD python3 bench/gpu_offline/smoke.py TOKENIZER_DIR
"""
import json
import sys
import time
from pathlib import Path

import peft
import torch
import transformers
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from trainer.benchmark import main

print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__,
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU: on the CPU in float32", flush=True)
tok = AutoTokenizer.from_pretrained(sys.argv[1])  # any folder with SmolLM2's tokenizer files
cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True,
                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
torch.manual_seed(0)
tiny = Path("/tmp/tiny")
LlamaForCausalLM(cfg).save_pretrained(tiny)
tok.save_pretrained(tiny)
cases = [{"id": f"c{i}", "night": 1 + i % 2, "namespace": "default", "relation": "pet",
          "episode": {"messages": [{"role": "user", "content": f"Mirpa Lovos{i}'s new parrot is named Lodun{i}!"},
                                   {"role": "assistant", "content": "Got it, noted!"}]},
          "probes": [{"question": f"What is the name of Mirpa Lovos{i}'s parrot?", "answers": [f"Lodun{i}"]}]}
         for i in range(4)]
Path("/tmp/facts.jsonl").write_text("\n".join(json.dumps(c) for c in cases))
Path("/tmp/general.jsonl").write_text(json.dumps({"id": "g", "question": "What is 2 plus 2?", "answers": ["4"]}))
t = time.time()
argv = ["--dataset", "/tmp/facts.jsonl", "--general", "/tmp/general.jsonl", "--nights", "2", "--out", "/tmp/smoke",
        "--model", str(tiny), "--config", "gpu-default"]
cpu = [] if torch.cuda.is_available() else ["device=cpu", "dtype=float32", "torch_threads=1"]
for item in cpu + ["steps=2", "imitation_every=2", "gate_reading=open"]:
    argv += ["--set", item]
rc = main(argv)
r = json.loads(Path("/tmp/smoke/results.json").read_text())
print("smoke rc", rc, "accepted", r["accepted"], "seconds", r["seconds"], f"total {time.time() - t:.0f}s", flush=True)
sys.exit(rc)
