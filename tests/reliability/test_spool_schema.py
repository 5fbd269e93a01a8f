"""The spool relay and a recreated database: a store without its tables counts as down, so spooled
episodes wait (nothing moves to rejected.jsonl), `/readyz` says why, and once `reverie db upgrade`
ran they are drained. The log says "drained" only for episodes that reached the store."""

from __future__ import annotations

import logging

import httpx
import pytest
from sqlalchemy import MetaData, text

from service.app import create_app
from service.config import Settings
from service.serving.recording import Recorder
from service.store.db import make_engine, make_sessionmaker, upgrade
from service.store.models import Episode
from service.store.spool import Spool
from tests.factories import completed, make_record
from tests.servers import server_in_thread


def recreate_empty(url: str) -> None:
    """What an operator does by mistake: drop the database and create it again, without migrating."""
    engine = make_engine(url)
    if url.startswith("sqlite"):  # a server's open connection would keep an unlinked file: drop the tables
        tables = MetaData()
        tables.reflect(engine)
        tables.drop_all(engine)
    else:
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def stored(sessions) -> int:
    with sessions() as session:
        return session.query(Episode).count()


def test_a_store_without_tables_is_down_not_a_reason_to_reject(tmp_path, database_url, caplog):
    caplog.set_level(logging.INFO)
    spool = Spool(tmp_path / "spool")
    spool.append_many([completed(make_record("one")) for _ in range(3)])
    recreate_empty(database_url)
    engine = make_engine(database_url)
    recorder = Recorder(make_sessionmaker(engine), spool)
    recorder.start()
    try:
        assert recorder.drain_spool() == 0
        assert recorder.record_sync(completed(make_record("one"))) == "spool"  # a new episode waits too
        assert spool.rejected() == 0 and spool.depth() == 4
        assert not recorder.store_available

        upgrade(database_url)
        recorder._store_down_until = 0.0  # skip the back-off: the next relay pass would do the same
        assert recorder.drain_spool() == 4
        assert stored(make_sessionmaker(engine)) == 4 and spool.depth() == 0
    finally:
        recorder.close()
        engine.dispose()
    assert "drained 4 spooled episodes" in caplog.text and "rejected" not in caplog.text


def test_drained_counts_only_what_reached_the_store(tmp_path, database_url, caplog):
    caplog.set_level(logging.INFO)
    spool = Spool(tmp_path / "spool")
    bad = completed(make_record("one"))
    bad.prompt_tokens = 2**70  # no integer column takes it: refused for good
    spool.append_many([bad, completed(make_record("one"))])
    engine = make_engine(database_url)
    try:
        assert Recorder(make_sessionmaker(engine), spool).drain_spool() == 1
    finally:
        engine.dispose()
    assert spool.rejected() == 1
    assert "drained 1 spooled episodes" in caplog.text and "drained 2" not in caplog.text


@pytest.mark.model
def test_readyz_reports_a_store_without_tables(tmp_path, tiny_model_dir, database_url):
    settings = Settings(
        data_dir=tmp_path / "data", database_url=database_url, model=str(tiny_model_dir), scheduler=False,
        embedded_worker=False,
    )
    with server_in_thread(create_app(settings)) as base_url:
        assert httpx.get(f"{base_url}/readyz").json()["store"] == "ok"
        recreate_empty(database_url)
        ready = httpx.get(f"{base_url}/readyz")
        assert ready.json()["store"] == "spooling"
        assert "reverie db upgrade" in ready.json()["store_error"]
        reply = httpx.post(
            f"{base_url}/v1/chat/completions", timeout=60,
            json={"model": "reverie", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
        )
        assert reply.status_code == 200  # recorded in the spool, not refused and not rejected
        assert Spool(settings.resolved_spool_dir).rejected() == 0
