"""The worker puts vLLM to sleep around training and always wakes it, on success and on failure.

vLLM's sleep mode needs a GPU, so a small loopback server answers `/sleep` and `/wake_up` here and
records the order of calls against the training itself."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from service.store import episodes as episode_store
from service.store import runs as run_store
from service.store.db import make_engine, make_sessionmaker
from service.sleep.gpu_share import VLLMSleeper
from service.sleep.job import SleepOutcome
from service.sleep.worker import Worker
from tests.adapters import make_lora
from tests.servers import server_in_thread
from tests.factories import completed, make_record

pytestmark = [pytest.mark.model]


def sleep_endpoints(calls: list[str]) -> FastAPI:
    app = FastAPI()

    @app.post("/sleep")
    def sleep(level: int = 1):
        calls.append(f"sleep(level={level})")
        return {}

    @app.post("/wake_up")
    def wake_up():
        calls.append("wake_up")
        return {}

    @app.get("/readyz")
    def ready():
        return {}

    return app


@pytest.mark.parametrize("training_fails", [False, True])
def test_vllm_sleeps_while_the_worker_trains(tmp_path, tiny_model_dir, training_fails):
    calls: list[str] = []
    candidate = make_lora(tiny_model_dir, tmp_path / "candidate", seed=5)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    from service.store.db import upgrade

    upgrade(url)
    sessions = make_sessionmaker(make_engine(url))
    with sessions.begin() as session:
        episode_store.upsert_episodes(session=session, records=[completed(make_record())])
    with sessions() as session:
        run_store.enqueue_run(session=session, namespace="default", trigger="manual")

    def consolidate(job, progress):
        calls.append("train")
        if training_fails:
            raise RuntimeError("CUDA out of memory")
        return SleepOutcome(adapter_dir=candidate, accepted=True, rank=4)

    with server_in_thread(sleep_endpoints(calls)) as vllm_url:
        worker = Worker(
            session_factory=sessions, consolidator=consolidate, base_model=lambda: tiny_model_dir,
            adapters_dir=tmp_path / "adapters", around_training=VLLMSleeper(vllm_url).asleep,
        )
        run = worker.run_once()
    assert calls == ["sleep(level=1)", "train", "wake_up"]
    assert run.state == ("failed" if training_fails else "published")
