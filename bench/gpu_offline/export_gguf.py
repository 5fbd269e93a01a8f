"""De-quantise the bundled GGUF (carried in two parts) into a plain HF folder, as service.modelprep does.

    python3 bench/gpu_offline/export_gguf.py GGUF_FILE OUT_DIR
"""
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
gguf, out = Path(sys.argv[1]), Path(sys.argv[2])
tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
model.hf_quantizer = None
if hasattr(model.config, "quantization_config"):
    del model.config.quantization_config
model.config.name_or_path = "SmolLM2-135M-Instruct"
model.save_pretrained(out)
tok.save_pretrained(out)
print("exported", out, sum(p.numel() for p in model.parameters()), flush=True)
