"""Shared fixtures: real models (a tiny random one for speed, SmolLM2 where learning must show)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Two threads collapse on CI's two shared cores; every test process uses one.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# LiteLLM (a test client) fetches its model cost map from GitHub when imported, unless told to stay offline.
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import torch  # noqa: E402

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
# Exported models survive between runs: the GGUF export costs ~20 s.
MODEL_CACHE = Path(os.environ.get("REVERIE_TEST_MODEL_CACHE", REPO / ".cache" / "models"))


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct exported from the bundled GGUF to a plain HF folder."""
    from service.modelprep import bundled_gguf_path, export_gguf, is_prepared

    target = MODEL_CACHE / "SmolLM2-135M-Instruct"
    if not is_prepared(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        export_gguf(bundled_gguf_path(), target)
    return target


@pytest.fixture(scope="session")
def tiny_model_dir(smollm2_dir: Path) -> Path:
    """A 2-layer random Llama with SmolLM2's tokenizer and chat template: real code paths, fast."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    target = MODEL_CACHE / "tiny-random-llama"
    if (target / "config.json").is_file():
        return target
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    tmp = target.with_name(target.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    os.replace(tmp, target)
    return target


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.db)])
def database_url(request, tmp_path):
    """A migrated, empty store: SQLite file or a fresh Postgres database."""
    from service.store.db import upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
        upgrade(url)
        yield url
        return
    from tests.db import fresh_postgres_database

    with fresh_postgres_database() as url:
        upgrade(url)
        yield url


@pytest.fixture
def postgres_url():
    from service.store.db import upgrade
    from tests.db import fresh_postgres_database

    with fresh_postgres_database() as url:
        upgrade(url)
        yield url
