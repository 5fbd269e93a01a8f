"""What writes a night's text (REVERIE_NIGHT_GENERATION): vLLM when the engine is vLLM and stays awake,
else the worker's own generate, which asks nothing of any server. The night through a real vLLM is
tests/service/sleep/test_vllm_night.py."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.config import Settings
from service.store import episodes as episode_store
from service.store import runs as run_store
from service.store.db import make_engine, make_sessionmaker, upgrade
from service.sleep.worker import build_worker
from tests.factories import completed, make_record
from tests.servers import REPO, free_port


def settings(**values) -> Settings:
    return Settings(_env_file=None, **values)


def test_the_night_generates_through_vllm_when_the_engine_is_vllm_and_stays_awake():
    assert settings().resolved_night_generation == "local"
    assert settings(engine="vllm").resolved_night_generation == "vllm"
    assert settings(engine="vllm", vllm_sleep_during_training=True).resolved_night_generation == "local"
    assert settings(engine="vllm", night_generation="local").resolved_night_generation == "local"
    assert settings(night_generation="vllm").resolved_night_generation == "vllm"  # a worker beside a vLLM


def test_vllm_generation_with_vllm_asleep_through_the_night_is_refused_at_start():
    with pytest.raises(ValidationError, match="REVERIE_NIGHT_GENERATION=vllm needs vLLM awake"):
        settings(engine="vllm", night_generation="vllm", vllm_sleep_during_training=True)


@pytest.mark.model
def test_the_local_path_asks_no_server(tmp_path, tiny_model_dir):
    """The embedded default's worker, its vLLM address a port nobody listens on: a night that samples
    (model-written questions, on-policy samples, imitation groups) publishes, its text generated here."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    config = settings(data_dir=tmp_path / "data", database_url=url, model=str(tiny_model_dir),
                      vllm_url=f"http://127.0.0.1:{free_port()}",
                      sleep_config=str(REPO / "tests" / "data" / "tiny-sleep.yaml"))
    sessions = make_sessionmaker(make_engine(url))
    with sessions.begin() as session:
        said = "My colleague Tovren Maldek adopted a goat named Pilbur."
        told = make_record(namespace="ns", messages=[{"role": "user", "content": said}])
        episode_store.upsert_episodes(session=session, records=[completed(told, response="Noted.")])
    with sessions() as session:
        run_store.enqueue_run(session=session, namespace="ns", trigger="manual")
    worker = build_worker(config, sessions)
    assert worker.consolidator.generation is None
    run = worker.run_once()
    assert run.state == "published", run.error
    assert run.metrics["generation"] == {"by": "local"}
    assert run.metrics["dreams"] > 0 and run.metrics["train"]["imitation_reward"] is not None  # the student sampled
