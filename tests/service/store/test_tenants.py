"""The store's tenant tables on SQLite and real Postgres: API keys (hashing, made, found, revoked), the
shared rate buckets (one limit however many takers, nothing taken when refused), dashboard sessions,
the key lookup's behaviour while the store is down, and migration 0005 on an empty database."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import inspect, text

from service.errors import StoreUnavailableError
from service.serving.auth import StoreKeys, namespace_for
from service.config import Settings
from service.serving.limits import KeyLimiter, RateLimitedError, StoreBuckets
from service.store import api_keys as key_store
from service.store import dashboard_sessions as session_store
from service.store import rate_buckets
from service.store.db import make_engine, make_reading_sessionmaker, make_sessionmaker, upgrade
from service.store.models import utcnow

DEAD_STORE = "postgresql://root@127.0.0.1:1/nowhere"


@pytest.fixture
def sessions(database_url):
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def test_a_key_is_random_and_only_its_keyed_digest_is_kept():
    key, other = key_store.new_key(), key_store.new_key()
    assert key != other and key.startswith("rk_") and len(key) == key_store.KEY_CHARS
    assert key_store.could_be_a_store_key(key) and not key_store.could_be_a_store_key("sk-alice")
    digest = key_store.key_digest(key)
    assert digest == key_store.key_digest(key) and len(digest) == 64 and key not in digest
    assert digest != key_store.key_digest(other)
    import hashlib

    assert digest != hashlib.sha256(key.encode()).hexdigest()  # keyed: not the bare SHA-256 of the key


def test_keys_are_made_found_and_revoked(sessions):
    with sessions() as session:
        row, key = key_store.create_key(session=session, namespace="alice", label="laptop")
        _, other = key_store.create_key(session=session, namespace="bob")
    with sessions() as session:
        stored = key_store.list_keys(session=session)
        assert [k.namespace for k in stored] == ["bob", "alice"]  # newest first
        assert all(key not in (k.key_hash, k.prefix) for k in stored) and row.prefix == key[:11]
        assert key_store.namespace_of_key(session=session, key=key) == "alice"
        assert key_store.namespace_of_key(session=session, key=key[:-1] + "x") is None
        assert key_store.has_active_keys(session=session)
        for reference in (str(row.id), key, row.prefix):
            assert [k.id for k in key_store.find_keys(session=session, reference=reference)] == [row.id]
        assert row.id in [k.id for k in key_store.find_keys(session=session, reference=row.prefix[:6])]
        assert key_store.find_keys(session=session, reference="rk_%") == []  # LIKE's wildcards are text here

        revoked = key_store.revoke_key(session=session, key_id=row.id)
        assert revoked.revoked_at is not None
        assert key_store.revoke_key(session=session, key_id=row.id).revoked_at == revoked.revoked_at  # the first time stays
        assert key_store.revoke_key(session=session, key_id=uuid.uuid4()) is None
        assert key_store.namespace_of_key(session=session, key=key) is None
        assert [k.namespace for k in key_store.list_keys(session=session, include_revoked=False)] == ["bob"]
        key_store.revoke_key(session=session, key_id=stored[0].id)
        assert not key_store.has_active_keys(session=session)


def test_a_bucket_gives_per_minute_then_refills_and_a_refusal_takes_nothing(sessions):
    t0 = 1_800_000_000.0
    with sessions() as session:
        assert [rate_buckets.take_token(session=session, caller="k", per_minute=3, now=t0) for _ in range(3)] == [0.0] * 3
        assert rate_buckets.take_token(session=session, caller="k", per_minute=3, now=t0) == pytest.approx(20.0)
        assert rate_buckets.take_token(session=session, caller="k", per_minute=3, now=t0 + 10) == pytest.approx(10.0)
        assert rate_buckets.take_token(session=session, caller="k", per_minute=3, now=t0 + 20) == 0.0  # refilled one
        assert rate_buckets.take_token(session=session, caller="k", per_minute=3, now=t0 + 20) > 0
        assert rate_buckets.take_token(session=session, caller="other", per_minute=3, now=t0) == 0.0  # its own bucket
        # a replica whose clock is behind the last refill adds nothing (and takes nothing it should not)
        assert rate_buckets.take_token(session=session, caller="k", per_minute=3, now=t0 - 30) > 0
        assert rate_buckets.take_token(session=session, caller="k", per_minute=3, now=t0 + 600) == 0.0  # full again
        assert rate_buckets.forget_full_buckets(session=session, idle_since=t0 + 1) == 1  # "other" idle since t0


@pytest.mark.db
def test_concurrent_takers_on_postgres_share_one_limit(postgres_url):
    """Eight threads (eight connections, as eight replicas would hold) take at once: exactly the limit passes."""
    engine = make_engine(postgres_url)
    sessions = make_sessionmaker(engine)
    taken, start = [], threading.Barrier(8)

    def take() -> None:
        start.wait()
        for _ in range(5):
            with sessions() as session:
                taken.append(rate_buckets.take_token(session=session, caller="k", per_minute=12, now=1_800_000_000.0))

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()
    assert len(taken) == 40 and taken.count(0.0) == 12


def test_the_limiter_shares_the_store_bucket_and_limits_alone_while_the_store_is_down(sessions):
    first, second = (KeyLimiter(2, buckets=StoreBuckets(sessions, 2)) for _ in range(2))  # two replicas
    first.acquire("k")()
    second.acquire("k")()
    with pytest.raises(RateLimitedError) as refused:
        first.acquire("k")
    assert 0 < refused.value.retry_after_s <= 30
    down = KeyLimiter(1, buckets=StoreBuckets(make_sessionmaker(make_engine(DEAD_STORE)), 1))
    down.acquire("k")()  # its own bucket while the store does not answer
    with pytest.raises(RateLimitedError):
        down.acquire("k")


def test_dashboard_sessions_open_and_close(sessions):
    with sessions() as session:
        session_store.open_session(session=session, session_digest="a" * 64, expires_at=utcnow() + timedelta(hours=1))
        session_store.open_session(session=session, session_digest="b" * 64, expires_at=utcnow() - timedelta(seconds=1))
        assert session_store.session_is_open(session=session, session_digest="a" * 64)
        assert not session_store.session_is_open(session=session, session_digest="b" * 64)  # expired
        session_store.close_session(session=session, session_digest="a" * 64)
        assert not session_store.session_is_open(session=session, session_digest="a" * 64)


class Switch:
    """A sessionmaker that can be pointed at a dead database: the store going down under a running replica."""

    def __init__(self, live):
        self.live, self.dead, self.down = live, make_sessionmaker(make_engine(DEAD_STORE)), False

    def __call__(self):
        return (self.dead if self.down else self.live)()


def test_a_replica_goes_by_its_last_answers_only_while_the_store_is_down(sessions):
    settings = Settings(api_keys="sk-env:envns")
    with sessions() as session:
        _, key = key_store.create_key(session=session, namespace="alice")
        _, unseen = key_store.create_key(session=session, namespace="carol")
    store = Switch(sessions)
    keys = StoreKeys(store, retry_after_s=0.0)
    assert namespace_for(settings, f"Bearer {key}", keys) == "alice"
    assert namespace_for(settings, "Bearer sk-env", keys) == "envns"  # REVERIE_API_KEYS never asks the store
    store.down = True
    assert namespace_for(settings, f"Bearer {key}", keys) == "alice"  # heard lately: still served (spooled)
    with pytest.raises(StoreUnavailableError):
        namespace_for(settings, f"Bearer {unseen}", keys)  # never heard: 503, not a wrong-key 401
    assert namespace_for(settings, "Bearer sk-env", keys) == "envns"
    keys.remember_s = 0.0
    with pytest.raises(StoreUnavailableError):
        namespace_for(settings, f"Bearer {key}", keys)  # heard too long ago
    store.down = False
    with sessions() as session:
        key_store.revoke_key(session=session, key_id=key_store.find_keys(session=session, reference=key)[0].id)
    with pytest.raises(Exception, match="Incorrect API key"):
        namespace_for(settings, f"Bearer {key}", keys)


@pytest.mark.db
def test_the_key_lookups_sessions_read_outside_a_transaction(postgres_url):
    """`make_reading_sessionmaker` (StoreKeys' sessions in the app): each statement is its own transaction,
    with no BEGIN and ROLLBACK round trips around it; a plain session's two reads share one."""
    engine = make_engine(postgres_url)
    try:
        factories = ((make_reading_sessionmaker(engine), True), (make_sessionmaker(engine), False))
        for factory, own_transactions in factories:
            with factory() as session:
                first, second = (session.scalar(text("SELECT txid_current()")) for _ in range(2))
            assert (first != second) == own_transactions
        keys = StoreKeys(make_reading_sessionmaker(engine))
        with make_sessionmaker(engine)() as session:
            _, key = key_store.create_key(session=session, namespace="alice")
        assert keys.namespace_of(key) == "alice" and keys.has_keys()
    finally:
        engine.dispose()


def test_open_access_ends_with_the_first_store_key_and_never_beyond_loopback(sessions):
    keys = StoreKeys(sessions)
    assert namespace_for(Settings(), "Bearer anything", keys) == "default"
    with sessions() as session:
        _, key = key_store.create_key(session=session, namespace="alice")
    with pytest.raises(Exception, match="Incorrect API key"):
        namespace_for(Settings(), "Bearer anything", keys)
    with pytest.raises(Exception, match="didn't provide an API key"):
        namespace_for(Settings(), None, keys)
    assert namespace_for(Settings(), f"Bearer {key}", keys) == "alice"
    with sessions() as session:
        key_store.revoke_key(session=session, key_id=key_store.list_keys(session=session)[0].id)
    assert namespace_for(Settings(), None, keys) == "default"  # no live key left: the embedded default again
    with pytest.raises(Exception, match="didn't provide an API key"):
        namespace_for(Settings(host="0.0.0.0"), None, keys)  # but never for a public address


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.db)])
def test_migration_0005_on_an_empty_database_and_back(backend, tmp_path):
    from alembic import command

    from service.store.db import alembic_config
    from tests.db import fresh_postgres_database

    def check(url: str) -> None:
        upgrade(url)
        engine = make_engine(url)
        tables = set(inspect(engine).get_table_names())
        assert {"api_keys", "rate_buckets", "dashboard_sessions"} <= tables
        with make_sessionmaker(engine)() as session:
            _, key = key_store.create_key(session=session, namespace="ns")
            assert key_store.namespace_of_key(session=session, key=key) == "ns"
        command.downgrade(alembic_config(url), "0004")
        assert not {"api_keys", "rate_buckets", "dashboard_sessions"} & set(inspect(engine).get_table_names())
        upgrade(url)
        assert {"api_keys", "rate_buckets", "dashboard_sessions"} <= set(inspect(engine).get_table_names())
        engine.dispose()

    if backend == "sqlite":
        check(f"sqlite:///{tmp_path / 'empty.db'}")
    else:
        with fresh_postgres_database() as url:
            check(url)
