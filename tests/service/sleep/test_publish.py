"""Publishing adapter folders: atomic, immutable, and a full disk fails the run without harm."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from service.sleep.adapter_folders import publish_folder
from service.store import episodes as episode_store
from service.store import runs as run_store
from service.store.db import make_engine, make_sessionmaker
from service.store.models import Adapter, AdapterState, Episode
from service.sleep.job import SleepOutcome
from service.sleep.worker import Worker
from tests.adapters import make_lora
from tests.figures import record_figure
from tests.factories import completed, make_record


def test_publish_is_complete_and_immutable(tmp_path):
    source = tmp_path / "candidate"
    source.mkdir()
    (source / "adapter_config.json").write_text("{}")
    (source / "adapter_model.safetensors").write_bytes(os.urandom(4096))
    final = publish_folder(source, tmp_path / "adapters" / "ns" / "run-1")
    assert sorted(p.name for p in final.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    assert (final / "adapter_model.safetensors").read_bytes() == (source / "adapter_model.safetensors").read_bytes()
    assert not (tmp_path / "adapters" / "ns" / "run-1.tmp").exists()
    with pytest.raises(FileExistsError):
        publish_folder(source, final)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs, nearly full: the next adapter does not fit."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)], capture_output=True)
    if result.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs to fill: {result.stderr.decode()}")
        pytest.skip("mounting a tmpfs needs root")
    (mount_point / "filler").write_bytes(b"\0" * (256 * 1024 - 8192))
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


@pytest.mark.model
def test_disk_full_during_publish_fails_the_run_and_keeps_the_active_adapter(tiny_model_dir, tmp_path, tiny_disk, database_url):
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    active = make_lora(tiny_model_dir, tmp_path / "v1", seed=1)
    candidate = make_lora(tiny_model_dir, tmp_path / "candidate", seed=2, rank=8)
    assert sum(f.stat().st_size for f in candidate.iterdir()) > 8192
    with sessions.begin() as session:
        episode_store.upsert_episodes(session=session, records=[completed(make_record()) for _ in range(2)])
        session.add(Adapter(id=uuid.uuid4(), namespace="default", version=1, path=str(active), rank=4, state=AdapterState.ACTIVE))
    with sessions() as session:
        run_store.enqueue_run(session=session, namespace="default", trigger="manual")

    worker = Worker(
        session_factory=sessions,
        consolidator=lambda job, progress: SleepOutcome(adapter_dir=candidate, accepted=True, rank=8),
        base_model=lambda: tiny_model_dir,
        adapters_dir=tiny_disk / "adapters",
        lease_s=30,
    )
    finished = worker.run_once()
    assert finished.state == "failed" and "No space left on device" in finished.error
    with sessions() as session:
        assert [(a.version, a.state) for a in session.query(Adapter)] == [(1, "active")]
        assert all(e.consolidated_by is None for e in session.query(Episode))
    leftovers = [p for p in (tiny_disk / "adapters").rglob("*") if p.is_file()] if (tiny_disk / "adapters").exists() else []
    record_figure("disk full during publish", run_state=finished.state, active_adapter_after="v1", files_left=len(leftovers))
    assert leftovers == []  # the half-written .tmp folder was removed
    engine.dispose()
