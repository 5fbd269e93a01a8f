"""Transcripts are private: the data dir is 0700, the SQLite database (and its WAL) and the spool's
files are 0600, whatever the umask."""

from __future__ import annotations

import os
import stat

import httpx
import pytest

from service.app import create_app
from service.config import Settings
from service.store.db import upgrade
from service.store.spool import ACTIVE, REJECTED, Spool
from tests.factories import make_record
from tests.servers import server_in_thread


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask():
    previous = os.umask(0o002)
    yield
    os.umask(previous)


@pytest.mark.model
def test_data_dir_and_database_are_private(tmp_path, tiny_model_dir, open_umask):
    data = tmp_path / "reverie"
    settings = Settings(data_dir=data, model=str(tiny_model_dir), scheduler=False, embedded_worker=False, default_max_tokens=2)
    upgrade(settings.resolved_database_url)
    with server_in_thread(create_app(settings)) as base_url:
        r = httpx.post(f"{base_url}/v1/chat/completions", json={"model": "reverie", "messages": [{"role": "user", "content": "hi"}]}, timeout=60)
        assert r.status_code == 200
        assert mode(data) == 0o700
        database_files = [p for p in data.iterdir() if p.name.startswith("reverie.db")]
        assert {p.name for p in database_files} >= {"reverie.db", "reverie.db-wal"}
        assert {p.name: mode(p) for p in database_files} == {p.name: 0o600 for p in database_files}


def test_an_existing_data_dir_is_tightened(tmp_path, tiny_model_dir, open_umask):
    data = tmp_path / "reverie"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    settings = Settings(data_dir=data, model=str(tiny_model_dir), scheduler=False, embedded_worker=False)
    upgrade(settings.resolved_database_url)
    with server_in_thread(create_app(settings), wait=False):
        pass
    assert mode(data) == 0o700


def test_spool_files_are_private(tmp_path, open_umask):
    spool = Spool(tmp_path / "spool")
    spool.append(make_record())
    spool.reject([(make_record(), ValueError("refused"))])
    assert mode(tmp_path / "spool") == 0o700
    assert mode(tmp_path / "spool" / ACTIVE) == 0o600
    assert mode(tmp_path / "spool" / REJECTED) == 0o600
    assert spool.purge(lambda record: True) == 2
    assert mode(tmp_path / "spool" / ACTIVE) == 0o600
