"""Reliability under failure, with figures for docs/reliability.md: Postgres down for 30 s under load,
and a worker killed at random points of its runs."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter

import openai
import pytest
import yaml
from sqlalchemy import select

from service.app import create_app
from service.config import Settings
from service.store import episodes as episode_store
from service.store import runs as run_store
from service.store.db import make_engine, make_sessionmaker
from service.store.models import Adapter, AdapterEpisode, Episode, SleepRun
from tests.figures import record_figure
from tests.servers import REPO, server_in_thread
from tests.reliability.test_recording_faults import all_episodes, pg_cluster, wait_for_postgres
from tests.factories import completed, make_record
from tests.reliability.test_worker_crash import start_worker, wait_until

pytestmark = [pytest.mark.db, pytest.mark.model, pytest.mark.slow]

OUTAGE_S = 30


def test_postgres_down_30s_under_load_loses_nothing(tmp_path, tiny_model_dir, postgres_url):
    settings = Settings(
        data_dir=tmp_path / "data", database_url=postgres_url, model=str(tiny_model_dir), scheduler=False,
        embedded_worker=False, spool_drain_interval_s=0.5,
    )
    app = create_app(settings)
    acknowledged: list[str] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def load(stream: bool) -> None:
        client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="x", max_retries=0, timeout=60)
        while not stop.is_set():
            try:
                if stream:
                    chunks = list(client.chat.completions.create(model="reverie", messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True))
                    acknowledged.append(chunks[0].id)
                else:
                    acknowledged.append(client.chat.completions.create(model="reverie", messages=[{"role": "user", "content": "hi"}], max_tokens=4).id)
            except BaseException as exc:  # noqa: BLE001 - every failure is a figure
                failures.append(exc)

    with server_in_thread(app) as base_url:
        threads = [threading.Thread(target=load, args=(i % 2 == 1,)) for i in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(2)
        before_outage = len(acknowledged)
        pg_cluster("stop")
        try:
            wait_for_postgres(postgres_url, up=False)
            time.sleep(OUTAGE_S)
            during = len(acknowledged) - before_outage
            spooled_peak = app.state.recorder.spool.depth()
        finally:
            pg_cluster("start")
            wait_for_postgres(postgres_url, up=True)
        time.sleep(3)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        deadline = time.monotonic() + 60
        while app.state.recorder.spool.depth() and time.monotonic() < deadline:
            time.sleep(0.2)
        spool_left = app.state.recorder.spool.depth()
    episodes = all_episodes(postgres_url)
    stored = {f"chatcmpl-{e.id.hex}": e for e in episodes}
    lost = [i for i in acknowledged if i not in stored or stored[i].status != "complete"]
    # What a loss looked like, so that a failure explains itself: never stored, or stored short of complete.
    how_lost = Counter(stored[i].status if i in stored else "missing" for i in lost)
    record_figure(
        "Postgres stopped for 30 s under load",
        outage_s=OUTAGE_S, acknowledged=len(acknowledged), answered_during_outage=during, spooled_peak=spooled_peak,
        lost=len(lost), duplicated=len(acknowledged) - len(set(acknowledged)), failed_requests=len(failures),
    )
    assert during > 0 and spooled_peak > 0
    assert failures == [], failures[:3]
    assert lost == [], f"{len(lost)} of {len(acknowledged)} lost: {dict(how_lost)}; {spool_left} spool lines left"
    assert len(set(acknowledged)) == len(acknowledged)


TRIALS = 10


def test_worker_killed_at_random_points(tmp_path, tiny_model_dir, postgres_url):
    """Ten runs, each with a worker killed at a random moment; afterwards one worker finishes them all.
    At every point: no episode consolidated without a published adapter and its lineage."""
    rng = random.Random(1125)
    sessions = make_sessionmaker(make_engine(postgres_url))
    config = yaml.safe_load((REPO / "tests" / "data" / "tiny-sleep.yaml").read_text())
    (tmp_path / "sleep.yaml").write_text(yaml.safe_dump({**config, "steps": 30}))
    env = {
        "REVERIE_DATABASE_URL": postgres_url, "REVERIE_MODEL": str(tiny_model_dir),
        "REVERIE_DATA_DIR": str(tmp_path / "data"), "REVERIE_SLEEP_CONFIG": str(tmp_path / "sleep.yaml"),
        "REVERIE_WORKER_LEASE_S": "1.5", "OMP_NUM_THREADS": "1",
    }

    def violations() -> int:
        bad = 0
        with sessions() as session:
            for episode in session.scalars(select(Episode).where(Episode.consolidated_by.is_not(None))):
                run = session.get(SleepRun, episode.consolidated_by)
                adapter = session.scalar(select(Adapter).where(Adapter.run_id == episode.consolidated_by))
                if run is None or run.state != "published" or adapter is None or not os.path.isdir(adapter.path) \
                        or session.get(AdapterEpisode, (adapter.id, episode.id)) is None:
                    bad += 1
        return bad

    kill_points, checked = [], 0
    for trial in range(TRIALS):
        namespace = f"ns{trial}"
        with sessions.begin() as session:
            episode_store.upsert_episodes(session=session, records=[
                completed(make_record(namespace=namespace, messages=[{"role": "user", "content": f"Olek {trial} sails."}]))
                for _ in range(3)
            ])
        with sessions() as session:
            run_store.enqueue_run(session=session, namespace=namespace, trigger="manual")
        worker = start_worker(env, tmp_path / f"worker{trial}.log")
        delay = rng.uniform(1.0, 12.0)
        time.sleep(delay)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        with sessions() as session:
            states = [r.state for r in run_store.list_runs(session=session, limit=100)]
        kill_points.append((round(delay, 2), states.count("published")))
        assert violations() == 0
        checked += 1

    def all_published() -> bool:
        with sessions() as session:
            return all(r.state == "published" for r in run_store.list_runs(session=session, limit=100))

    survivor = start_worker(env, tmp_path / "survivor.log")
    try:
        wait_until(all_published, 600, "not all runs finished")
    finally:
        survivor.terminate()
        survivor.wait(timeout=30)
    with sessions() as session:
        episodes = list(session.scalars(select(Episode)))
        adapters = list(session.scalars(select(Adapter)))
    unconsolidated = [e for e in episodes if e.consolidated_by is None]
    record_figure(
        "worker killed at random points",
        trials=TRIALS, kill_after_s=[k for k, _ in kill_points], published_when_killed=[p for _, p in kill_points],
        consolidated_without_adapter=violations(), episodes=len(episodes), left_unconsolidated=len(unconsolidated),
        adapters=len(adapters),
    )
    assert violations() == 0 and unconsolidated == [] and len(adapters) == TRIALS
