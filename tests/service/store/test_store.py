"""The episodic store on SQLite and on real Postgres: upserts, idempotency, backlog, spool, recorder."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from service.serving.recording import Recorder
from service.store import episodes as store
from service.store.db import make_engine, make_sessionmaker
from service.store.episodes import EpisodeRecord
from service.store.models import Episode, EpisodeStatus, utcnow
from service.store.spool import Spool
from tests.factories import completed, make_record


@pytest.fixture
def sessions(database_url):
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def count(sessions, **filters) -> int:
    with sessions() as session:
        query = select(func.count()).select_from(Episode).filter_by(**filters)
        return session.scalar(query)


def test_pending_then_complete_is_one_row(sessions):
    record = make_record()
    with sessions.begin() as session:
        store.upsert_episodes(session=session, records=[record])
    assert count(sessions, status="pending") == 1
    with sessions.begin() as session:
        store.upsert_episodes(session=session, records=[completed(record)])
    with sessions() as session:
        row = session.get(Episode, record.id)
        assert (row.status, row.response, row.prompt_tokens, row.completion_tokens) == ("complete", "hello", 3, 2)
        assert row.messages == [{"role": "user", "content": "hi"}]
    assert count(sessions) == 1


def test_replaying_a_stale_pending_never_downgrades_a_final_row(sessions):
    record = make_record()
    stale_pending = EpisodeRecord.from_json(record.to_json())
    with sessions.begin() as session:
        store.upsert_episodes(session=session, records=[completed(record)])
    with sessions.begin() as session:
        store.upsert_episodes(session=session, records=[stale_pending])
    assert count(sessions, status="complete") == 1
    assert count(sessions) == 1


def test_idempotency_key_is_unique_per_namespace(sessions):
    first = make_record(idempotency_key="k1")
    other_namespace = make_record(namespace="b", idempotency_key="k1")
    with sessions.begin() as session:
        store.upsert_episodes(session=session, records=[first, other_namespace])
    with sessions() as session:
        found = store.get_by_idempotency_key(session=session, namespace="default", key="k1")
        assert found.id == first.id
        assert store.get_by_idempotency_key(session=session, namespace="default", key="nope") is None


def test_list_is_newest_first_and_filters(sessions):
    base = utcnow()
    records = [make_record(created_at=base + timedelta(seconds=i)) for i in range(3)]
    records.append(completed(make_record(namespace="b", created_at=base + timedelta(seconds=9))))
    with sessions.begin() as session:
        store.upsert_episodes(session=session, records=records)
    with sessions() as session:
        newest = store.list_episodes(session=session, namespace="default", limit=2)
        assert [row.id for row in newest] == [records[2].id, records[1].id]
        assert [row.id for row in store.list_episodes(session=session, status="complete")] == [records[3].id]


def test_backlog_counts_unconsolidated_complete_episodes(sessions):
    base = utcnow() - timedelta(hours=1)
    with sessions.begin() as session:
        store.upsert_episodes(
            session=session,
            records=[
                completed(make_record(namespace="a", created_at=base), tokens=(10, 5)),
                completed(make_record(namespace="a"), tokens=(1, 1)),
                make_record(namespace="a"),  # pending: not memory yet
                completed(make_record(namespace="b"), tokens=(2, 2)),
            ],
        )
    with sessions() as session:
        items = {item.namespace: item for item in store.backlog(session=session)}
    assert (items["a"].episodes, items["a"].tokens) == (2, 17)
    assert (items["b"].episodes, items["b"].tokens) == (1, 4)
    assert abs(items["a"].oldest_at.replace(tzinfo=None) - base.replace(tzinfo=None)) < timedelta(seconds=1)


def test_spool_keeps_the_latest_state_and_skips_a_torn_line(tmp_path):
    spool = Spool(tmp_path / "spool")
    pending = make_record()
    spool.append(pending)
    spool.append(completed(EpisodeRecord.from_json(pending.to_json())))
    other = make_record()
    spool.append(other)
    with open(tmp_path / "spool" / "active.jsonl", "a") as handle:
        handle.write('{"id": "torn')  # a crash mid-append
    assert spool.depth() == 4
    received: list[EpisodeRecord] = []
    assert spool.drain(received.extend) == 2
    by_id = {r.id: r for r in received}
    assert by_id[pending.id].status == "complete" and by_id[other.id].status == "pending"
    assert spool.depth() == 0


def test_spool_keeps_records_when_the_writer_fails(tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.append(make_record())

    def failing(_records):
        raise RuntimeError("store down")

    with pytest.raises(RuntimeError):
        spool.drain(failing)
    assert spool.depth() == 1
    spool.append(make_record())
    received: list = []
    assert spool.drain(received.extend) == 2


def test_recorder_spools_while_the_store_is_down_and_drains_once_back(database_url, tmp_path):
    down = make_sessionmaker(make_engine("postgresql://root@127.0.0.1:1/nowhere"))
    spool = Spool(tmp_path / "spool")
    recorder = Recorder(down, spool)
    recorder.start()
    try:
        record = make_record()
        assert recorder.record_sync(record) == "spool"
        assert recorder.record_sync(completed(record)) == "spool"
    finally:
        recorder.close()
    assert spool.depth() == 2

    engine = make_engine(database_url)
    back = Recorder(make_sessionmaker(engine), spool)
    assert back.drain_spool() == 1
    assert back.drain_spool() == 0
    assert count(make_sessionmaker(engine), status="complete") == 1
    engine.dispose()


def unstorable(record: EpisodeRecord) -> EpisodeRecord:
    """A record no store takes: a token count past any integer column (a hand-made bad record is the
    only way to get one now that text is made storable)."""
    record.prompt_tokens = 2**70
    return record


def test_a_record_the_store_refuses_is_set_aside_and_the_rest_drain(sessions, tmp_path):
    spool = Spool(tmp_path / "spool")
    good = [completed(make_record()) for _ in range(3)]
    bad = unstorable(completed(make_record()))
    spool.append_many([good[0], bad, good[1]])

    def outage(_records):
        raise ConnectionError("store down")

    with pytest.raises(ConnectionError):
        spool.drain(outage)  # leaves them in a draining file, ahead of what comes next
    spool.append(good[2])
    recorder = Recorder(sessions, spool)
    assert recorder.drain_spool() == 3  # stored; the refused one is set aside, not "drained"
    assert spool.depth() == 0 and spool.rejected() == 1
    assert recorder.store_available
    assert count(sessions, status="complete") == 3
    [line] = (spool.directory / "rejected.jsonl").read_text().splitlines()
    kept = json.loads(line)
    assert kept["id"] == str(bad.id) and kept["rejected_because"]
    assert EpisodeRecord.from_json(kept).prompt_tokens == 2**70


def test_the_writer_sets_aside_a_refused_record_and_keeps_the_store(sessions, tmp_path):
    """One bad record in a group commit: its neighbours are stored, the store is not marked down."""
    import concurrent.futures

    recorder = Recorder(sessions, Spool(tmp_path / "spool"))
    recorder.start()
    try:
        records = [completed(make_record()) for _ in range(20)]
        records[7] = unstorable(records[7])
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            places = list(pool.map(recorder.record_sync, records))
        assert recorder.store_available
        assert recorder.record_sync(completed(make_record())) == "store"
    finally:
        recorder.close()
    assert places[7] == "rejected" and places.count("store") == 19
    assert count(sessions, status="complete") == 20
    assert recorder.spool.depth() == 0 and recorder.spool.rejected() == 1


def test_recorder_refuses_when_store_and_spool_both_fail(tmp_path):
    from service.errors import StoreUnavailableError

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the spool folder should be")
    recorder = Recorder(make_sessionmaker(make_engine("postgresql://root@127.0.0.1:1/nowhere")), Spool(blocker))
    recorder.start()
    try:
        with pytest.raises(StoreUnavailableError):
            recorder.record_sync(make_record())
    finally:
        recorder.close()


def test_group_commit_writes_concurrent_records(database_url, tmp_path):
    import concurrent.futures

    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    recorder = Recorder(sessions, Spool(tmp_path / "spool"))
    recorder.start()
    try:
        records = [completed(make_record()) for _ in range(200)]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            places = list(pool.map(recorder.record_sync, records))
    finally:
        recorder.close()
    assert places == ["store"] * 200
    assert count(sessions, status="complete") == 200
    engine.dispose()


def test_record_json_roundtrip():
    record = completed(make_record(params={"temperature": 0}))
    again = EpisodeRecord.from_json(json.loads(json.dumps(record.to_json())))
    assert again == record


def test_migrations_match_the_models(database_url):
    """`reverie db upgrade` builds exactly the schema the ORM expects (no forgotten migration)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from service.store.models import Base

    engine = make_engine(database_url)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    engine.dispose()
