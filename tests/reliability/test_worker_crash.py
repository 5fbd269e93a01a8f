"""`kill -9` of a `reverie worker` mid-run: the lease expires, a new worker retakes the run and
completes it; no episode is consolidated twice or without a published adapter."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from sqlalchemy import func, select

from service.store import episodes as episode_store
from service.store import runs as run_store
from service.store.db import make_engine, make_sessionmaker
from service.store.models import Adapter, AdapterEpisode, Episode, SleepRun
from tests.servers import REPO
from tests.factories import completed, make_record

pytestmark = [pytest.mark.db, pytest.mark.model, pytest.mark.slow]


def start_worker(env: dict, log_path) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker", "--poll", "0.2"],
            cwd=REPO, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
        )


def wait_until(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(what)


def test_killed_worker_run_completes_on_restart(tmp_path, tiny_model_dir, postgres_url):
    sessions = make_sessionmaker(make_engine(postgres_url))
    records = [completed(make_record(messages=[{"role": "user", "content": f"Ilse Brann owns {n} kayaks."}])) for n in range(4)]
    with sessions.begin() as session:
        episode_store.upsert_episodes(session=session, records=records)
    with sessions() as session:
        run, _ = run_store.enqueue_run(session=session, namespace="default", trigger="manual")

    config = yaml.safe_load((REPO / "tests" / "data" / "tiny-sleep.yaml").read_text())
    slow_config = tmp_path / "slow.yaml"
    slow_config.write_text(yaml.safe_dump({**config, "steps": 400}))  # long enough to be killed mid-seed
    env = {
        "REVERIE_DATABASE_URL": postgres_url,
        "REVERIE_MODEL": str(tiny_model_dir),
        "REVERIE_DATA_DIR": str(tmp_path / "data"),
        "REVERIE_SLEEP_CONFIG": str(slow_config),
        "REVERIE_WORKER_LEASE_S": "3",
        "OMP_NUM_THREADS": "1",
    }

    def current():
        with sessions() as session:
            return session.get(SleepRun, run.id)

    first = start_worker(env, tmp_path / "worker1.log")
    try:
        wait_until(lambda: current().phase == "seed" and current().step >= 2, 120, "the first worker never trained")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    killed = current()
    assert (killed.state, killed.epoch) == ("running", 1)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Adapter)) == 0
        assert session.scalar(select(func.count()).select_from(Episode).where(Episode.consolidated_by.is_not(None))) == 0
    assert not any((tmp_path / "data" / "adapters").rglob("adapter_config.json"))

    slow_config.write_text(yaml.safe_dump(config))  # the retry may be quick
    second = start_worker(env, tmp_path / "worker2.log")
    try:
        done = wait_until(lambda: current().state in ("published", "failed", "rejected") and current(), 180, "no retry")
    finally:
        second.terminate()
        second.wait(timeout=30)
    assert done.state == "published", done.error
    assert done.epoch == 2
    with sessions() as session:
        adapters = list(session.scalars(select(Adapter)))
        lineage = list(session.scalars(select(AdapterEpisode)))
        consolidated = list(session.scalars(select(Episode.consolidated_by)))
    assert len(adapters) == 1 and adapters[0].run_id == run.id and os.path.isdir(adapters[0].path)
    assert sorted(str(row.episode_id) for row in lineage) == sorted(str(r.id) for r in records)
    assert consolidated == [run.id] * 4
