"""Sleep runs and adapters in the store (SQLite and Postgres): one live run, leases, fencing,
the publish transaction, rollback; and the night scheduler's leader and misfire catch-up."""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from service.sleep.scheduler import Leadership, NightScheduler, previous_fire_time
from service.store import adapters as adapter_store
from service.store import episodes as episode_store
from service.store import runs as run_store
from service.store.db import make_engine, make_sessionmaker
from service.store.models import AdapterEpisode, Episode, SleepRun
from tests.factories import completed, make_record


@pytest.fixture
def db(database_url):
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(db):
    return make_sessionmaker(db)


def add_episodes(sessions, namespace="default", n=3, created_at=None) -> list[uuid.UUID]:
    records = [completed(make_record(namespace=namespace, **({"created_at": created_at} if created_at else {}))) for _ in range(n)]
    with sessions.begin() as session:
        episode_store.upsert_episodes(session=session, records=records)
    return [r.id for r in records]


def test_one_live_run_per_namespace(sessions):
    with sessions() as session:
        first, created = run_store.enqueue_run(session=session, namespace="a", trigger="manual")
        again, created_again = run_store.enqueue_run(session=session, namespace="a", trigger="schedule")
        other, _ = run_store.enqueue_run(session=session, namespace="b", trigger="manual")
    assert created and not created_again and again.id == first.id and other.id != first.id


def test_claim_lease_and_fencing(sessions):
    with sessions() as session:
        queued, _ = run_store.enqueue_run(session=session, namespace="a", trigger="manual")
    with sessions() as session:
        run = run_store.claim_run(session=session, owner="w1", lease_s=60)
    assert (run.id, run.state, run.epoch, run.lease_owner) == (queued.id, "running", 1, "w1")
    with sessions() as session:
        assert run_store.claim_run(session=session, owner="w2", lease_s=60) is None  # lease still fresh
    with sessions() as session:
        run_store.heartbeat(session=session, run_id=run.id, epoch=1, phase="seed", step=3, total=10)
    # the lease expires: another worker takes the run over, and the first one is fenced off
    with sessions() as session:
        taken = run_store.claim_run(session=session, owner="w2", lease_s=0)
    assert (taken.epoch, taken.lease_owner) == (2, "w2")
    with sessions() as session, pytest.raises(run_store.LeaseLostError):
        run_store.heartbeat(session=session, run_id=run.id, epoch=1, step=4)
    with sessions() as session, pytest.raises(run_store.LeaseLostError):
        adapter_store.publish(session=session, run_id=run.id, epoch=1, namespace="a", path="/x", rank=8, experts=1, metrics={}, episode_ids=[])


def test_publish_is_one_transaction_with_lineage(sessions):
    ids = add_episodes(sessions, "a", 3)
    late = add_episodes(sessions, "a", 1)  # arrives after the batch was taken: stays in the backlog
    with sessions() as session:
        run_store.enqueue_run(session=session, namespace="a", trigger="manual")
        run = run_store.claim_run(session=session, owner="w", lease_s=60)
    with sessions() as session:
        adapter = adapter_store.publish(
            session=session, run_id=run.id, epoch=run.epoch, namespace="a", path="/adapters/a/1",
            rank=8, experts=1, metrics={"recall": 0.5}, episode_ids=ids,
        )
    assert (adapter.version, adapter.state, adapter.parent_version) == (1, "active", None)
    with sessions() as session:
        assert session.get(SleepRun, run.id).state == "published"
        assert {e.id for e in session.scalars(select(Episode).where(Episode.consolidated_by == run.id))} == set(ids)
        assert {row.episode_id for row in session.scalars(select(AdapterEpisode))} == set(ids)
        assert [b.episodes for b in episode_store.backlog(session=session)] == [1]
        assert session.get(Episode, late[0]).consolidated_by is None
    # the next night: v2 on top of v1, v1 stays as a rollback candidate
    with sessions() as session:
        run_store.enqueue_run(session=session, namespace="a", trigger="schedule")
        run2 = run_store.claim_run(session=session, owner="w", lease_s=60)
    with sessions() as session:
        v2 = adapter_store.publish(session=session, run_id=run2.id, epoch=run2.epoch, namespace="a", path="/p2", rank=16, experts=2, metrics={}, episode_ids=late)
    assert (v2.version, v2.parent_version) == (2, 1)
    with sessions() as session:
        states = {a.version: a.state for a in adapter_store.list_adapters(session=session, namespace="a")}
    assert states == {1: "candidate", 2: "active"}
    with sessions() as session:
        adapter_store.activate(session=session, namespace="a", version=1)
        assert adapter_store.active_adapter(session=session, namespace="a").version == 1
        with pytest.raises(LookupError):
            adapter_store.activate(session=session, namespace="a", version=9)


def test_rejected_candidate_consolidates_nothing(sessions):
    add_episodes(sessions, "a", 2)
    with sessions() as session:
        run_store.enqueue_run(session=session, namespace="a", trigger="manual")
        run = run_store.claim_run(session=session, owner="w", lease_s=60)
    with sessions() as session:
        rejected = adapter_store.record_rejected(session=session, run_id=run.id, epoch=run.epoch, namespace="a", path="/r", rank=8, experts=1, metrics={"recall": 0.0})
    with sessions() as session:
        assert session.get(SleepRun, run.id).state == "rejected"
        assert [b.episodes for b in episode_store.backlog(session=session)] == [2]
        with pytest.raises(ValueError):
            adapter_store.activate(session=session, namespace="a", version=rejected.version)


@pytest.mark.db
def test_concurrent_workers_claim_a_run_once(postgres_url):
    engine = make_engine(postgres_url)
    sessions = make_sessionmaker(engine)
    for namespace in ("a", "b", "c"):
        with sessions() as session:
            run_store.enqueue_run(session=session, namespace=namespace, trigger="manual")

    def claim(owner):
        with sessions() as session:
            run = run_store.claim_run(session=session, owner=owner, lease_s=60)
            return run.id if run else None

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        claimed = [r for r in pool.map(claim, [f"w{i}" for i in range(8)]) if r]
    assert len(claimed) == len(set(claimed)) == 3
    engine.dispose()


def test_previous_fire_time():
    from service.sleep.scheduler import cron_trigger

    trigger = cron_trigger("0 3 * * *", "UTC")
    now = datetime(2026, 11, 25, 2, 59, tzinfo=timezone.utc)
    assert previous_fire_time(trigger, now) == datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc)


def test_scheduler_fires_once_per_namespace_with_backlog(sessions, db):
    add_episodes(sessions, "a", 2)
    add_episodes(sessions, "b", 1)
    scheduler = NightScheduler(session_factory=sessions, db=db, cron="0 3 * * *")
    try:
        assert sorted(r.namespace for r in scheduler.fire()) == ["a", "b"]
        assert scheduler.fire() == []  # the runs are live: nothing doubles
        with sessions() as session:
            assert {r.trigger for r in run_store.list_runs(session=session)} == {"schedule"}
    finally:
        scheduler.stop()


def test_missed_nights_coalesce_into_one_run(sessions, db):
    three_days_ago = datetime.now(timezone.utc) - timedelta(days=3)
    add_episodes(sessions, "a", 2, created_at=three_days_ago)
    add_episodes(sessions, "fresh", 1)  # told after the last fire time: waits for the next night
    scheduler = NightScheduler(session_factory=sessions, db=db, cron="0 * * * *")  # hourly: ~72 misfires
    try:
        now = datetime.now(timezone.utc)
        first = scheduler.catch_up(now)
        assert [r.namespace for r in first] == ["a"]
        assert scheduler.catch_up(now) == []
    finally:
        scheduler.stop()


def test_backlog_trigger(sessions, db):
    add_episodes(sessions, "big", 5)
    add_episodes(sessions, "small", 1)
    scheduler = NightScheduler(session_factory=sessions, db=db, cron="0 3 * * *", backlog_threshold=3)
    try:
        assert [(r.namespace, r.trigger) for r in scheduler.check_backlog()] == [("big", "backlog")]
    finally:
        scheduler.stop()


@pytest.mark.db
def test_only_one_scheduler_leads_on_postgres(postgres_url):
    first_db, second_db = make_engine(postgres_url), make_engine(postgres_url)
    first, second = Leadership(first_db), Leadership(second_db)
    try:
        assert first.is_leader()
        assert not second.is_leader()
        first.release()  # the leader goes away: the other takes over
        deadline = time.monotonic() + 10
        while not second.is_leader() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert second.is_leader() and not first.is_leader()
    finally:
        first.release()
        second.release()
        first_db.dispose()
        second_db.dispose()
