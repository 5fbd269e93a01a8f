"""`reverie runs list | show | cancel` (SQLite and Postgres), and Ctrl-C on `reverie sleep --wait`."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update

from service.cli import main
from service.store import episodes as episode_store
from service.store import runs as run_store
from service.store.db import make_engine, make_sessionmaker
from service.store.models import SleepRun, utcnow
from tests.factories import completed, make_record


@pytest.fixture
def sessions(database_url):
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def test_runs_list_show_and_cancel(database_url, sessions, capsys):
    url = ["--database-url", database_url]
    assert main(["runs", "list", *url]) == 0
    assert capsys.readouterr().out.strip() == "no sleep runs"
    with sessions() as session:
        queued = run_store.enqueue_run(session=session, namespace="ns", trigger="manual")[0].id
        stalled = run_store.enqueue_run(session=session, namespace="other", trigger="schedule")[0].id
        run_store.claim_run(session=session, owner="gone:1:x", lease_s=60, run_id=stalled)
    with sessions.begin() as session:
        session.execute(update(SleepRun).where(SleepRun.id == stalled).values(heartbeat_at=utcnow() - timedelta(hours=1)))

    assert main(["runs", "list", *url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[:3] for line in lines] == [[str(stalled), "other", "stalled"], [str(queued), "ns", "queued"]]
    assert "no sleep worker is alive" in lines[1]
    assert main(["runs", "list", "--namespace", "ns", "--json", *url]) == 0
    assert [(r["id"], r["state"]) for r in json.loads(capsys.readouterr().out)] == [(str(queued), "queued")]
    assert main(["runs", "show", str(stalled), *url]) == 0
    shown = capsys.readouterr().out
    assert "state:\tstalled" in shown and "gone:1:x (epoch 1)" in shown

    assert main(["runs", "cancel", str(queued), *url]) == 0
    assert "cancelled" in capsys.readouterr().out
    assert main(["runs", "show", str(queued), "--json", *url]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "cancelled"
    assert main(["runs", "cancel", str(queued), *url]) == 1
    assert "already finished" in capsys.readouterr().err
    assert main(["runs", "show", str(uuid.uuid4()), *url]) == 1
    assert "no sleep run" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["runs", "cancel", "not-a-uuid", *url])
    assert exit_.value.code == 2 and "is not a run id" in capsys.readouterr().err


def test_ctrl_c_on_sleep_wait_says_the_run_goes_on(database_url, sessions, capsys, monkeypatch):
    def interrupt(_seconds):
        raise KeyboardInterrupt

    with sessions.begin() as session:  # a namespace with something to learn: one without is refused
        episode_store.upsert_episodes(session=session, records=[completed(make_record(namespace="ns"))])
    monkeypatch.setattr(time, "sleep", interrupt)
    assert main(["sleep", "--namespace", "ns", "--wait", "--database-url", database_url]) == 130
    with sessions() as session:
        (run,) = run_store.list_runs(session=session)
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"run {run.id} goes on" in err
    assert f"reverie runs show {run.id}" in err and f"reverie runs cancel {run.id}" in err
    assert run.state == "queued"
