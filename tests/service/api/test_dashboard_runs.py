"""The dashboard's runs (SQLite and Postgres): a cancel button on a live run's page, stalled runs shown
as stalled with why, the sleep workers on the overview."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from service.app import create_app
from service.config import Settings
from service.store import runs as run_store
from service.store import workers as worker_store
from service.store.models import SleepRun, SleepWorker, utcnow

ADMIN_KEY = "dashboard-admin-key-for-runs"


@pytest.fixture
def client(tmp_path, tiny_model_dir, database_url):
    settings = Settings(
        data_dir=tmp_path / "data", database_url=database_url, model=str(tiny_model_dir), admin_key=ADMIN_KEY,
        scheduler=False, embedded_worker=False, worker_lease_s=30,
    )
    with TestClient(create_app(settings), follow_redirects=False) as test_client:
        yield test_client


def sign_in(client: TestClient) -> str:
    assert client.post("/admin/login", data={"key": ADMIN_KEY, "next": "/admin"}).status_code == 303
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get("/admin").text).group(1)


def test_run_page_cancels_and_runs_show_stalled(client):
    csrf = sign_in(client)
    sessions = client.app.state.session_factory
    with sessions() as session:
        queued = run_store.enqueue_run(session=session, namespace="alpha", trigger="manual")[0].id
        stalled = run_store.enqueue_run(session=session, namespace="beta", trigger="manual")[0].id
        run_store.claim_run(session=session, owner="gone:7:w", lease_s=30, run_id=stalled)
        worker_store.beat(session=session, worker_id="gone:7:w", run_id=stalled)

    page = client.get(f"/admin/runs/{queued}").text
    assert f'class="danger cancel-run" data-namespace="alpha" data-run-id="{queued}"' in page
    assert "no sleep worker is alive" not in page  # gone:7:w still beats
    overview = client.get("/admin").text
    assert 'data-worker-id="gone:7:w"' in overview and ">alive<" in overview

    old = utcnow() - timedelta(minutes=5)
    with sessions.begin() as session:
        session.execute(update(SleepRun).where(SleepRun.id == stalled).values(heartbeat_at=old))
        session.execute(update(SleepWorker).values(beat_at=old))
    page = client.get(f"/admin/runs/{stalled}").text
    assert 'class="badge state-stalled">stalled<' in page and "worker gone:7:w has been silent" in page
    runs = client.get("/admin/runs").text
    assert runs.count(">stalled<") == 1 and ">queued<" in runs
    overview = client.get("/admin").text
    assert ">silent<" in overview and "stalled now" in overview and "no sleep worker is alive" in overview

    # the button's request: the session's CSRF token is needed, as for every write
    assert client.post(f"/sleep/{queued}/cancel").status_code == 403
    assert client.post(f"/sleep/{queued}/cancel", headers={"X-CSRF-Token": csrf}).json()["state"] == "cancelled"
    page = client.get(f"/admin/runs/{queued}").text
    assert "cancel-run" not in page and 'state-cancelled">cancelled<' in page


def test_overview_says_when_no_worker_was_seen(client):
    sign_in(client)
    assert "No sleep worker has been seen" in client.get("/admin").text
