"""Forgetting through lineage: rows leave the store and the spool, the adapters that learned them
(and those grown on them) retire, the newest clean one serves, and a rebuild is queued."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from service.sleep.forgetting import forget
from service.store.forgetting import sweep_tombstones
from service.store import adapters as adapter_store
from service.store import episodes as episode_store
from service.store import runs as run_store
from service.store.db import make_engine, make_sessionmaker
from service.store.models import AdapterEpisode, Episode, RunState, SleepRun
from service.store.spool import Spool
from tests.factories import completed, make_record


@pytest.fixture
def sessions(database_url):
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def tell(sessions, n, namespace="default", conversation_id=None):
    records = [completed(make_record(namespace=namespace, conversation_id=conversation_id)) for _ in range(n)]
    with sessions.begin() as session:
        episode_store.upsert_episodes(session=session, records=records)
    return [r.id for r in records]


def night(sessions, namespace="default"):
    with sessions() as session:
        run_store.enqueue_run(session=session, namespace=namespace, trigger="schedule")
        run = run_store.claim_run(session=session, owner="w", lease_s=60)
        batch = [e.id for e in adapter_store.consolidation_batch(session=session, namespace=namespace, limit=100)]
    with sessions() as session:
        return adapter_store.publish(
            session=session, run_id=run.id, epoch=run.epoch, namespace=namespace, path=f"/a/{run.id}", rank=8,
            experts=1, metrics={}, episode_ids=batch,
        )


def state(sessions, namespace="default"):
    with sessions() as session:
        return {a.version: a.state for a in adapter_store.list_adapters(session=session, namespace=namespace)}


def count_rows(sessions, model, **where):
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model).filter_by(**where))


def test_forgetting_a_late_episode_retires_only_the_adapter_that_learned_it(sessions, tmp_path):
    first = tell(sessions, 2)
    night(sessions)  # v1
    second = tell(sessions, 2)
    night(sessions)  # v2, grown on v1
    report = forget(session_factory=sessions, spool=Spool(tmp_path), namespace="default", episode_ids=[second[0]])
    assert report.retired_versions == [2] and report.serving_version == 1 and report.deleted == 1
    assert state(sessions) == {1: "active", 2: "retired"}
    with sessions() as session:
        assert session.get(Episode, second[0]) is None
        assert session.get(Episode, second[1]).consolidated_by is None  # back in the backlog for the rebuild
        assert all(session.get(Episode, i).consolidated_by is not None for i in first)
        rebuild = run_store.get_run(session=session, run_id=uuid.UUID(report.rebuild_run_id))
        assert (rebuild.trigger, rebuild.state) == ("rebuild", "queued")
    assert count_rows(sessions, AdapterEpisode) == 3


def test_forgetting_an_early_episode_retires_its_descendants_too(sessions, tmp_path):
    first = tell(sessions, 2)
    night(sessions)
    tell(sessions, 1)
    night(sessions)
    report = forget(session_factory=sessions, spool=None, namespace="default", episode_ids=[first[0]])
    assert sorted(report.retired_versions) == [1, 2] and report.serving_version is None
    with sessions() as session:
        assert adapter_store.active_adapter(session=session, namespace="default") is None
        assert [b.episodes for b in episode_store.backlog(session=session)] == [2]


def test_forgetting_a_namespace_leaves_no_row_and_no_spool_line(sessions, tmp_path):
    tell(sessions, 3, namespace="gone")
    tell(sessions, 2, namespace="gone", conversation_id="c1")
    night(sessions, "gone")
    keep = tell(sessions, 2, namespace="kept")
    spool = Spool(tmp_path)
    spool.append(completed(make_record(namespace="gone")))
    spool.append(completed(make_record(namespace="kept")))
    spool.reject([(completed(make_record(namespace="gone")), ValueError("refused by the store"))])
    report = forget(session_factory=sessions, spool=spool, namespace="gone")
    assert report.deleted == 5 and report.spooled_removed == 2 and spool.rejected() == 0
    assert count_rows(sessions, Episode, namespace="gone") == 0
    assert count_rows(sessions, Episode, namespace="kept") == 2
    assert spool.depth() == 1 and state(sessions, "gone") == {1: "retired"}
    received = []
    spool.drain(received.extend)
    assert [r.namespace for r in received] == ["kept"] and keep


def test_forgetting_a_conversation(sessions):
    tell(sessions, 2, conversation_id="secret")
    other = tell(sessions, 1, conversation_id="other")
    report = forget(session_factory=sessions, spool=None, namespace="default", conversation_id="secret")
    assert report.deleted == 2 and report.retired_versions == []
    with sessions() as session:
        assert [e.id for e in session.scalars(select(Episode))] == other


def test_a_pending_episode_is_tombstoned_then_swept(sessions):
    record = make_record()
    with sessions.begin() as session:
        episode_store.upsert_episodes(session=session, records=[record])
    forget(session_factory=sessions, spool=None, namespace="default", episode_ids=[record.id])
    late = completed(record, response="the secret")  # the request finishes after the forgetting
    with sessions.begin() as session:
        episode_store.upsert_episodes(session=session, records=[late])
    with sessions() as session:
        row = session.get(Episode, record.id)
        assert (row.status, row.response, row.messages) == ("aborted", None, [])
    with sessions.begin() as session:
        assert sweep_tombstones(session=session) == 0  # its request may still be running
    with sessions.begin() as session:
        assert sweep_tombstones(session=session, older_than=timedelta(0)) == 1
    assert count_rows(sessions, Episode) == 0


def test_a_run_consolidating_forgotten_episodes_is_cancelled_and_requeued(sessions):
    ids = tell(sessions, 2)
    with sessions() as session:
        run_store.enqueue_run(session=session, namespace="default", trigger="manual")
        run = run_store.claim_run(session=session, owner="w", lease_s=60)
    report = forget(session_factory=sessions, spool=None, namespace="default", episode_ids=[ids[0]])
    with sessions() as session:
        assert session.get(SleepRun, run.id).state == RunState.CANCELLED
        with pytest.raises(run_store.LeaseLostError):
            adapter_store.publish(session=session, run_id=run.id, epoch=run.epoch, namespace="default", path="/x",
                                  rank=8, experts=1, metrics={}, episode_ids=ids)
    assert report.rebuild_run_id and report.rebuild_run_id != str(run.id)
