"""/metrics after traffic and a sleep, and structured logs carrying the request id."""

from __future__ import annotations

import json
import logging
import time

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.app import create_app
from service.config import Settings
from service.logs import JsonFormatter, request_id
from tests.servers import REPO, server_in_thread

pytestmark = [pytest.mark.model]
ADMIN = {"Authorization": "Bearer adm"}


def scrape(base_url: str) -> dict[str, list]:
    text = httpx.get(f"{base_url}/metrics", headers=ADMIN).text
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(samples, name: str, **labels) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_metrics_after_traffic_and_a_sleep(tmp_path, tiny_model_dir, database_url):
    settings = Settings(
        data_dir=tmp_path / "data", database_url=database_url, model=str(tiny_model_dir), admin_key="adm",
        sleep_config=str(REPO / "tests" / "data" / "tiny-sleep.yaml"), scheduler=False, adapter_sync_interval_s=0.3,
    )
    app = create_app(settings)
    with server_in_thread(app) as base_url:
        assert httpx.get(f"{base_url}/metrics").status_code == 401
        client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="x", max_retries=0)
        for i in range(3):
            client.chat.completions.create(model="reverie", messages=[{"role": "user", "content": f"Fact {i}: Ada keeps bees."}], max_tokens=5)
        list(client.chat.completions.create(model="reverie", messages=[{"role": "user", "content": "Stream."}], max_tokens=5, stream=True))
        httpx.post(f"{base_url}/v1/chat/completions", json={"model": "nope", "messages": [{"role": "user", "content": "x"}]})
        before = scrape(base_url)
        assert value(before["reverie_backlog_episodes"], "reverie_backlog_episodes", namespace="default") == 4

        run = httpx.post(f"{base_url}/sleep", headers=ADMIN).json()
        deadline = time.monotonic() + 120
        while run["state"] not in ("published", "failed", "rejected") and time.monotonic() < deadline:
            time.sleep(0.2)
            run = httpx.get(f"{base_url}/sleep/{run['id']}", headers=ADMIN).json()
        assert run["state"] == "published", run["error"]
        while app.state.engine.active_adapter("default") is None and time.monotonic() < deadline:
            time.sleep(0.1)
        metrics = scrape(base_url)

    latency = metrics["reverie_request_latency_seconds"]
    assert value(latency, "reverie_request_latency_seconds_count", stream="false") == 3
    assert value(latency, "reverie_request_latency_seconds_count", stream="true") == 1
    assert 0 < value(latency, "reverie_request_latency_seconds_sum") < 60
    assert value(metrics["reverie_time_to_first_token_seconds"], "reverie_time_to_first_token_seconds_count") == 4
    tokens = metrics["reverie_tokens"]
    assert value(tokens, "reverie_tokens_total", kind="completion") == pytest.approx(4 * 5, abs=4)
    assert value(tokens, "reverie_tokens_total", kind="prompt") > 20
    requests = metrics["reverie_requests"]
    assert value(requests, "reverie_requests_total", status="200") == 4
    assert value(requests, "reverie_requests_total", status="404") == 1
    assert value(metrics["reverie_queue_depth"], "reverie_queue_depth") == 0
    assert value(metrics["reverie_spool_depth"], "reverie_spool_depth") == 0
    assert value(metrics["reverie_spool_rejected_episodes"], "reverie_spool_rejected_episodes_total") == 0
    assert value(metrics["reverie_backlog_episodes"], "reverie_backlog_episodes") == 0  # consolidated
    assert value(metrics["reverie_sleep_runs"], "reverie_sleep_runs_total", outcome="published") == 1
    durations = metrics["reverie_sleep_run_duration_seconds"]
    assert value(durations, "reverie_sleep_run_duration_seconds_count", outcome="published") == 1
    assert 0 < value(durations, "reverie_sleep_run_duration_seconds_sum", outcome="published") < 120
    assert value(metrics["reverie_adapter_swaps"], "reverie_adapter_swaps_total", namespace="default") == 1
    assert value(metrics["reverie_adapter_version"], "reverie_adapter_version", namespace="default") == 1
    assert value(metrics["reverie_backlog_tokens"], "reverie_backlog_tokens", namespace="default") == 0
    assert time.time() - 120 < value(
        metrics["reverie_last_successful_sleep_timestamp_seconds"], "reverie_last_successful_sleep_timestamp_seconds"
    ) <= time.time()


def test_json_logs_carry_the_request_id(tmp_path, tiny_model_dir, caplog):
    settings = Settings(
        data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 's.db'}", model=str(tiny_model_dir),
        scheduler=False, embedded_worker=False,
    )
    from service.store.db import upgrade

    upgrade(settings.resolved_database_url)
    seen: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record):
            seen.append(JsonFormatter().format(record))

    handler = Capture()
    service_logger = logging.getLogger("service")
    service_logger.addHandler(handler)
    previous_level = service_logger.level
    service_logger.setLevel(logging.INFO)
    try:
        with server_in_thread(create_app(settings)) as base_url:
            r = httpx.post(
                f"{base_url}/v1/chat/completions",
                json={"model": "reverie", "messages": [{"role": "user", "content": "x"}], "unknown_field_for_log": 1},
                headers={"X-Request-Id": "req-abc-123"},
            )
            assert r.status_code == 200 and r.headers["x-request-id"] == "req-abc-123"  # accepted, and logged
            generated = httpx.get(f"{base_url}/healthz").headers["x-request-id"]
            assert len(generated) == 32
    finally:
        service_logger.removeHandler(handler)
        service_logger.setLevel(previous_level)
    lines = [json.loads(line) for line in seen]
    tagged = [line for line in lines if line.get("request_id") == "req-abc-123"]
    assert tagged and all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    assert any("unknown_field_for_log" in line["message"] for line in tagged)
    assert request_id.get() is None


def operator_scene(database_url: str) -> None:
    """A store an operator should be alerted about: a 3-day-old backlog in `old`, a queued run, a stalled
    run (lease long expired), a running one, and a run published 2 days ago."""
    import uuid
    from datetime import timedelta

    from service.store import episodes as episode_store
    from service.store.db import make_engine, make_sessionmaker
    from service.store.models import SleepRun, SleepWorker, utcnow
    from tests.factories import completed, make_record

    now = utcnow()
    engine = make_engine(database_url)
    with make_sessionmaker(engine).begin() as session:
        episode_store.upsert_episodes(session=session, records=[
            completed(make_record(namespace="old", created_at=now - timedelta(days=3)), tokens=(30, 12)),
            completed(make_record(namespace="old", created_at=now - timedelta(hours=1)), tokens=(5, 3)),
        ])
        def run(namespace, state, **fields):
            session.add(SleepRun(id=uuid.uuid4(), namespace=namespace, trigger="manual", state=state, **fields))
        run("q", "queued")
        run("stuck", "running", lease_owner="dead-worker", heartbeat_at=now - timedelta(minutes=10), started_at=now)
        run("busy", "evaluating", lease_owner="live-worker", heartbeat_at=now, started_at=now)
        run("old", "published", started_at=now - timedelta(days=2, minutes=5), finished_at=now - timedelta(days=2))
        session.add(SleepWorker(id="dead-worker", started_at=now - timedelta(hours=1), beat_at=now - timedelta(minutes=10)))
        session.add(SleepWorker(id="live-worker", started_at=now - timedelta(hours=1), beat_at=now))
    engine.dispose()


def test_operator_metrics_from_the_store(tmp_path, tiny_model_dir, database_url):
    """Backlog tokens and age, last good sleep, runs queued/running/stalled (by the lease), workers'
    heartbeat age and how many are alive, the adapter served (0: base model), build info, and the spool counter's `_total`."""
    from service import __version__

    operator_scene(database_url)
    settings = Settings(
        data_dir=tmp_path / "data", database_url=database_url, model=str(tiny_model_dir), admin_key="adm",
        scheduler=False, embedded_worker=False, worker_lease_s=60,
    )
    with server_in_thread(create_app(settings)) as base_url:
        metrics = scrape(base_url)
    now = time.time()
    assert value(metrics["reverie_build_info"], "reverie_build_info", version=__version__) == 1
    assert value(metrics["reverie_backlog_tokens"], "reverie_backlog_tokens", namespace="old") == 50
    age = value(metrics["reverie_backlog_oldest_episode_age_seconds"], "reverie_backlog_oldest_episode_age_seconds", namespace="old")
    assert 3 * 86400 - 60 < age < 3 * 86400 + 60
    last = value(metrics["reverie_last_successful_sleep_timestamp_seconds"],
                 "reverie_last_successful_sleep_timestamp_seconds", namespace="old")
    assert abs(now - 2 * 86400 - last) < 60
    live = metrics["reverie_sleep_runs_live"]
    assert {s.labels["state"]: s.value for s in live} == {"queued": 1, "running": 1, "stalled": 1}
    beats = {s.labels["worker"]: s.value for s in metrics["reverie_worker_heartbeat_age_seconds"]}
    assert set(beats) == {"dead-worker", "live-worker"} and 540 < beats["dead-worker"] < 700 and beats["live-worker"] < 60
    assert value(metrics["reverie_workers_alive"], "reverie_workers_alive") == 1
    served = {s.labels["namespace"]: s.value for s in metrics["reverie_adapter_version"]}
    assert served == {"old": 0, "q": 0, "stuck": 0, "busy": 0}
    rejected = metrics["reverie_spool_rejected_episodes"]
    assert rejected[0].name == "reverie_spool_rejected_episodes_total" and rejected[0].value == 0
