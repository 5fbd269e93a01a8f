"""Broken or incompatible adapters are refused before they are published; the run fails readably and
the namespace keeps the adapter it had."""

from __future__ import annotations

import json
import shutil
import uuid

import pytest
import torch
from safetensors.torch import load_file, save_file

from service.adapter_check import check_adapter
from service.errors import AdapterError
from service.store import episodes as episode_store
from service.store import runs as run_store
from service.store.db import make_engine, make_sessionmaker
from service.store.models import Adapter, AdapterState, Episode
from service.sleep.job import SleepOutcome
from service.sleep.worker import Worker
from tests.adapters import make_lora
from tests.factories import completed, make_record

pytestmark = [pytest.mark.model]


@pytest.fixture(scope="module")
def good(tiny_model_dir, tmp_path_factory):
    return make_lora(tiny_model_dir, tmp_path_factory.mktemp("good") / "lora", seed=3)


def broken_copy(good, tmp_path, damage):
    folder = tmp_path / "broken"
    shutil.copytree(good, folder)
    damage(folder)
    return folder


def set_config(folder, **changes):
    config = json.loads((folder / "adapter_config.json").read_text())
    config.update(changes)
    (folder / "adapter_config.json").write_text(json.dumps(config))


def nan_weights(folder):
    tensors = load_file(folder / "adapter_model.safetensors")
    name = next(iter(tensors))
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_file(tensors, folder / "adapter_model.safetensors")


def test_a_good_adapter_passes(good, tiny_model_dir):
    assert check_adapter(good, base_model=tiny_model_dir, max_rank=8).config["r"] == 4


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: (f / "adapter_config.json").unlink(), "no adapter_config.json"),
        (lambda f: set_config(f, base_model_name_or_path="/models/other-7b"), "not the served base"),
        (lambda f: set_config(f, r=128), "rank 128"),
        (lambda f: set_config(f, peft_type="IA3"), "not LoRA"),
        (nan_weights, "NaN"),
        (lambda f: (f / "adapter_model.safetensors").write_bytes(b"\x00garbage" * 10), "cannot be read"),
    ],
)
def test_broken_adapters_are_refused(good, tiny_model_dir, tmp_path, damage, message):
    with pytest.raises(AdapterError, match=message):
        check_adapter(broken_copy(good, tmp_path, damage), base_model=tiny_model_dir, max_rank=64)


def test_a_corrupt_candidate_fails_the_run_and_changes_nothing(good, tiny_model_dir, tmp_path, database_url):
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    records = [completed(make_record()) for _ in range(2)]
    with sessions.begin() as session:
        episode_store.upsert_episodes(session=session, records=records)
        session.add(Adapter(id=uuid.uuid4(), namespace="default", version=1, path=str(good), rank=4, state=AdapterState.ACTIVE))
    with sessions() as session:
        run, _ = run_store.enqueue_run(session=session, namespace="default", trigger="manual")

    def corrupt_consolidator(job, progress):
        # the one failure we cannot make the real trainer produce on demand: NaN weights
        progress("seed", 1, 1, None)
        return SleepOutcome(adapter_dir=broken_copy(good, job.workdir, nan_weights), accepted=True, rank=4)

    worker = Worker(
        session_factory=sessions, consolidator=corrupt_consolidator, base_model=lambda: tiny_model_dir,
        adapters_dir=tmp_path / "adapters", lease_s=30,
    )
    finished = worker.run_once()
    assert finished.state == "failed" and "NaN" in finished.error
    with sessions() as session:
        assert [(a.version, a.state) for a in session.query(Adapter)] == [(1, "active")]
        assert all(e.consolidated_by is None for e in session.query(Episode))
    assert not (tmp_path / "adapters").exists() or not any((tmp_path / "adapters").rglob("*.safetensors"))
    engine.dispose()
