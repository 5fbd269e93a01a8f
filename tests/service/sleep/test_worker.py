"""What the worker hands the trainer: whole interactions of the namespace's new, unflagged episodes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from service.store import episodes as episode_store
from service.store import runs as run_store
from service.store.db import make_engine, make_sessionmaker
from service.sleep.job import SleepOutcome
from service.sleep.worker import Worker
from tests.adapters import make_lora
from tests.factories import completed, make_record
from tests.servers import REPO

pytestmark = [pytest.mark.model]


def test_the_trainer_sees_the_request_and_the_reply(tmp_path, tiny_model_dir, database_url):
    sessions = make_sessionmaker(make_engine(database_url))
    told = completed(make_record(messages=[{"role": "user", "content": "My dog is Pixel."}]), response="Nice name!")
    call = {"id": "c1", "type": "function", "function": {"name": "lookup_ferry", "arguments": {"route": "Osk"}}}
    agent = completed(make_record(messages=[{"role": "user", "content": "When is the ferry?"}]), response="")
    agent.tool_calls, agent.finish_reason = [call], "tool_calls"
    planted = completed(make_record(messages=[{"role": "user", "content": "x"}]), response="y")
    planted.flags = ["planted_instruction"]
    other = completed(make_record(namespace="other"))
    with sessions.begin() as session:
        episode_store.upsert_episodes(session=session, records=[told, agent, planted, other])
    with sessions() as session:
        run_store.enqueue_run(session=session, namespace="default", trigger="manual")
    seen = []

    def consolidate(job, progress):
        seen.extend(job.episodes)
        return SleepOutcome(adapter_dir=make_lora(tiny_model_dir, job.workdir / "a", seed=1), accepted=True, rank=4)

    worker = Worker(session_factory=sessions, consolidator=consolidate, base_model=lambda: tiny_model_dir,
                    adapters_dir=tmp_path / "adapters")
    assert worker.run_once().state == "published"
    assert sorted(seen, key=lambda e: e["id"] != str(told.id)) == [
        {"id": str(told.id), "messages": [{"role": "user", "content": "My dog is Pixel."},
                                          {"role": "assistant", "content": "Nice name!"}]},
        # a reply that called a tool: the call comes with it
        {"id": str(agent.id), "messages": [{"role": "user", "content": "When is the ferry?"},
                                           {"role": "assistant", "content": "", "tool_calls": [call]}]}]


def test_the_trainer_consolidator_refuses_grown_layers(tmp_path):
    """`growth_mode: layers` makes a new base, not an adapter: the run fails before training."""
    import uuid

    from service.sleep.consolidator import TrainerConsolidator
    from service.sleep.job import SleepJob

    job = SleepJob(run_id=uuid.uuid4(), namespace="default", episodes=[], base_model=tmp_path,
                   current_adapter=None, workdir=tmp_path)
    config = str(REPO / "tests" / "data" / "tiny-sleep.yaml")
    consolidator = TrainerConsolidator(config, growth_mode="layers")
    with pytest.raises(ValueError, match="LoRA adapters"):
        consolidator(job, lambda *_: None)


def test_episodes_a_night_did_not_consume_stay_for_the_next_run(tmp_path, tiny_model_dir, database_url):
    """A night whose dreaming budget ran out consumes the oldest episodes only: the rest are the next run's."""
    sessions = make_sessionmaker(make_engine(database_url))
    told_at = datetime(2026, 12, 1, tzinfo=timezone.utc)
    records = [completed(make_record(messages=[{"role": "user", "content": f"Note {i}."}],
                                     created_at=told_at + timedelta(minutes=i)), response="Noted.")
               for i in range(3)]
    with sessions.begin() as session:
        episode_store.upsert_episodes(session=session, records=records)
    handed: list[list[str]] = []

    def consolidate_the_first(job, progress):
        handed.append([e["id"] for e in job.episodes])
        return SleepOutcome(adapter_dir=make_lora(tiny_model_dir, job.workdir / "a", seed=1), accepted=True, rank=4,
                            episode_ids=[job.episodes[0]["id"]])

    worker = Worker(session_factory=sessions, consolidator=consolidate_the_first, base_model=lambda: tiny_model_dir,
                    adapters_dir=tmp_path / "adapters")
    for _ in range(2):
        with sessions() as session:
            run_store.enqueue_run(session=session, namespace="default", trigger="manual")
        run = worker.run_once()
        assert run.state == "published" and run.metrics["episodes"] == 1
    ids = [str(r.id) for r in records]
    assert handed == [ids, ids[1:]]  # the second night is handed what the first left, oldest first
