"""Sleep runs an operator can drive (SQLite and Postgres): cancel a queued or running run, see a run
whose worker went silent as stalled, see the workers' heartbeats, honest progress during setup."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update

from service.app import create_app
from service.config import Settings
from service.api.schemas import RunOut
from service.sleep.job import SleepOutcome
from service.sleep.worker import Worker
from service.store import episodes as episode_store
from service.store import runs as run_store
from service.store import workers as worker_store
from service.store.db import make_engine, make_sessionmaker
from service.store.models import Adapter, Episode, SleepRun, SleepWorker, utcnow
from tests.factories import completed, make_record
from tests.servers import server_in_thread

ADMIN = {"Authorization": "Bearer adm"}


@pytest.fixture
def sessions(database_url):
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def add_episodes(sessions, namespace="default", n=2) -> list[uuid.UUID]:
    records = [completed(make_record(namespace=namespace)) for _ in range(n)]
    with sessions.begin() as session:
        episode_store.upsert_episodes(session=session, records=records)
    return [r.id for r in records]


def queue(sessions, namespace="default") -> uuid.UUID:
    with sessions() as session:
        return run_store.enqueue_run(session=session, namespace=namespace, trigger="manual")[0].id


def test_cancelling_a_running_run_stops_the_worker_and_keeps_the_backlog(sessions, tmp_path):
    ids = add_episodes(sessions)
    run_id = queue(sessions)
    reached_the_end = []

    def consolidate(job, progress):
        progress("seed", 1, 10, None)
        with sessions() as session:
            run_store.cancel_run(session=session, run_id=job.run_id)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the next progress point after a beat raises
            progress("seed", 2, 10, None)
            time.sleep(0.05)
        reached_the_end.append(True)
        return SleepOutcome(adapter_dir=tmp_path / "never", accepted=True, rank=4)

    worker = Worker(session_factory=sessions, consolidator=consolidate, base_model=lambda: tmp_path,
                    adapters_dir=tmp_path / "adapters", lease_s=2)
    run = worker.run_once()
    assert run.id == run_id and run.state == "cancelled" and run.error == "cancelled by an operator"
    assert not reached_the_end
    with sessions() as session:
        assert session.scalars(select(Adapter)).all() == []
        assert [e.consolidated_by for e in session.scalars(select(Episode).where(Episode.id.in_(ids)))] == [None, None]
        assert episode_store.backlog(session=session)[0].episodes == 2
    assert not (tmp_path / "adapters").exists()


def test_cancel_refuses_unknown_and_finished_runs(sessions):
    run_id = queue(sessions)
    with sessions() as session:
        assert run_store.cancel_run(session=session, run_id=run_id).state == "cancelled"
    with sessions() as session, pytest.raises(ValueError, match="already finished"):
        run_store.cancel_run(session=session, run_id=run_id)
    with sessions() as session, pytest.raises(LookupError):
        run_store.cancel_run(session=session, run_id=uuid.uuid4())


def test_setup_reports_no_total(sessions, tmp_path):
    """The recipe says "setup 1/1" once the model is loaded; a phase of unknown length shows none."""
    add_episodes(sessions)
    queue(sessions)
    seen = []

    def consolidate(job, progress):
        progress("setup", 1, 1, None)
        time.sleep(0.6)  # past the progress interval: the next report is written
        progress("setup", 1, 1, None)
        with sessions() as session:
            seen.append(RunOut.of(run_store.get_run(session=session, run_id=job.run_id)).progress)
        raise RuntimeError("enough")

    Worker(session_factory=sessions, consolidator=consolidate, base_model=lambda: tmp_path,
           adapters_dir=tmp_path / "adapters").run_once()
    assert (seen[0].phase, seen[0].step, seen[0].total) == ("setup", 0, None)


def test_a_silent_worker_leaves_a_stalled_run_and_workers_beat(sessions, tmp_path):
    run_id = queue(sessions)
    with sessions() as session:
        liveness = worker_store.liveness(session=session, lease_s=60)
        queued = run_store.get_run(session=session, run_id=run_id)
        assert liveness.state_of(queued) == "queued"
        assert "no sleep worker is alive" in liveness.note_of(queued)
    with sessions() as session:
        run_store.claim_run(session=session, owner="dead-worker", lease_s=60)
        worker_store.beat(session=session, worker_id="dead-worker", run_id=run_id)
    with sessions() as session:
        liveness = worker_store.liveness(session=session, lease_s=60)
        run = run_store.get_run(session=session, run_id=run_id)
        assert liveness.state_of(run) == "running" and liveness.note_of(run) is None
        assert [(w.id, w.run_id, liveness.alive(w)) for w in liveness.workers] == [("dead-worker", run_id, True)]
    # the worker dies: neither the run's lease nor the worker's row is renewed
    old = utcnow() - timedelta(seconds=300)
    with sessions.begin() as session:
        session.execute(update(SleepRun).values(heartbeat_at=old))
        session.execute(update(SleepWorker).values(beat_at=old))
    with sessions() as session:
        liveness = worker_store.liveness(session=session, lease_s=60)
        run = run_store.get_run(session=session, run_id=run_id)
        out = RunOut.of(run, liveness)
    assert out.state == "stalled" and "dead-worker" in out.note and "no sleep worker is alive" in out.note
    # a live worker retakes it: running again
    with sessions() as session:
        run_store.claim_run(session=session, owner="w2", lease_s=60)
        worker_store.beat(session=session, worker_id="w2", run_id=run_id)
    with sessions() as session:
        liveness = worker_store.liveness(session=session, lease_s=60)
        assert RunOut.of(run_store.get_run(session=session, run_id=run_id), liveness).state == "running"
        assert liveness.workers_alive == 1


def test_the_worker_loop_beats_and_removes_its_row_when_it_stops(sessions, tmp_path):
    import threading

    worker = Worker(session_factory=sessions, consolidator=None, base_model=lambda: tmp_path,
                    adapters_dir=tmp_path / "adapters", owner="w-loop")
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, kwargs={"poll_s": 0.1, "stop": stop})
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with sessions() as session:
                if worker_store.list_workers(session=session):
                    break
            time.sleep(0.05)
        with sessions() as session:
            assert [(w.id, w.run_id) for w in worker_store.list_workers(session=session)] == [("w-loop", None)]
    finally:
        stop.set()
        thread.join(timeout=10)
    with sessions() as session:
        assert worker_store.list_workers(session=session) == []


@pytest.fixture
def admin_server(tmp_path, tiny_model_dir, database_url):
    settings = Settings(
        data_dir=tmp_path / "data", database_url=database_url, model=str(tiny_model_dir), admin_key="adm",
        scheduler=False, embedded_worker=False, worker_lease_s=30,
    )
    with server_in_thread(create_app(settings)) as base_url:
        yield base_url


@pytest.mark.model
def test_the_api_cancels_and_shows_stalled_runs_and_workers(admin_server, sessions):
    base_url = admin_server
    run_id = queue(sessions)
    shown = httpx.get(f"{base_url}/sleep/{run_id}", headers=ADMIN).json()
    assert shown["state"] == "queued" and "no sleep worker is alive" in shown["note"]
    assert httpx.post(f"{base_url}/sleep/{uuid.uuid4()}/cancel", headers=ADMIN).status_code == 404
    assert httpx.post(f"{base_url}/sleep/{run_id}/cancel").status_code == 401
    cancelled = httpx.post(f"{base_url}/sleep/{run_id}/cancel", headers=ADMIN)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    again = httpx.post(f"{base_url}/sleep/{run_id}/cancel", headers=ADMIN)
    assert again.status_code == 409 and again.json()["error"]["code"] == "run_finished"

    stalled_id = queue(sessions)
    with sessions() as session:
        run_store.claim_run(session=session, owner="gone:1:abc", lease_s=30)
        worker_store.beat(session=session, worker_id="gone:1:abc", run_id=stalled_id)
    assert httpx.get(f"{base_url}/sleep/{stalled_id}", headers=ADMIN).json()["state"] == "running"
    ready = httpx.get(f"{base_url}/readyz").json()
    assert [(w["id"], w["alive"], w["run_id"]) for w in ready["workers"]] == [("gone:1:abc", True, str(stalled_id))]
    old = utcnow() - timedelta(seconds=120)
    with sessions.begin() as session:
        session.execute(update(SleepRun).where(SleepRun.id == stalled_id).values(heartbeat_at=old))
        session.execute(update(SleepWorker).values(beat_at=old))
    shown = httpx.get(f"{base_url}/sleep/{stalled_id}", headers=ADMIN).json()
    assert shown["state"] == "stalled" and "gone:1:abc" in shown["note"]
    listed = httpx.get(f"{base_url}/admin/api/runs", headers=ADMIN).json()["items"]
    assert [r["state"] for r in listed if r["id"] == str(stalled_id)] == ["stalled"]
    ready = httpx.get(f"{base_url}/readyz")
    assert ready.status_code == 200 and ready.json()["workers"][0]["alive"] is False
    stats = httpx.get(f"{base_url}/admin/api/stats", headers=ADMIN).json()
    assert stats["namespaces"][0]["live_run"]["state"] == "stalled" and stats["workers"][0]["id"] == "gone:1:abc"
