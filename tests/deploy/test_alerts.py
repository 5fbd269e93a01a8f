"""deploy/prometheus/alerts.yml: valid for promtool, and every metric it names is served by a real
API's /metrics or a real `reverie worker`'s own /metrics."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from service.app import create_app
from service.config import Settings
from tests.servers import REPO, free_port, server_in_thread

RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS_OWN = {"up"}  # series Prometheus writes itself for each scrape target


def sample_names(text: str) -> set[str]:
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples} | {
        family.name for family in text_string_to_metric_families(text)
    }


@contextmanager
def worker_process(tmp_path, database_url: str):
    """`reverie worker` as a real process with its metrics port; yields the metrics URL."""
    port = free_port()
    env = {**os.environ, "REVERIE_DATA_DIR": str(tmp_path / "worker"), "REVERIE_WORKER_METRICS_PORT": str(port),
           "REVERIE_HOST": "127.0.0.1"}
    with open(tmp_path / "worker.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "worker", "--database-url", database_url, "--poll", "0.2"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "worker.log").read_text()
            try:
                if "reverie_worker_last_poll_timestamp_seconds " in httpx.get(url, timeout=2).text:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def rule_metric_names() -> set[str]:
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    assert len(rules) >= 5 and all({"alert", "expr", "annotations"} <= set(rule) for rule in rules)
    return {name for rule in rules for name in re.findall(r"\b(reverie_\w+|up)\b", rule["expr"])}


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (Debian: apt-get install prometheus)")
def test_promtool_accepts_the_rules():
    result = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.model
def test_every_metric_the_rules_name_is_served(tmp_path, tiny_model_dir):
    from service import __version__
    from service.store.db import upgrade
    from tests.service.api.test_metrics import operator_scene

    database_url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(database_url)
    operator_scene(database_url)
    settings = Settings(
        data_dir=tmp_path / "data", database_url=database_url, model=str(tiny_model_dir), admin_key="adm",
        scheduler=False, embedded_worker=False,
    )
    with server_in_thread(create_app(settings)) as base_url:
        served = sample_names(httpx.get(f"{base_url}/metrics", headers={"Authorization": "Bearer adm"}).text)
    with worker_process(tmp_path, database_url) as url:
        worker_text = httpx.get(url).text
    worker = {s.name: s for family in text_string_to_metric_families(worker_text) for s in family.samples}
    assert worker["reverie_build_info"].labels == {"version": __version__}
    assert abs(time.time() - worker["reverie_worker_last_poll_timestamp_seconds"].value) < 30
    assert worker["reverie_worker_busy"].value in (0, 1)
    missing = rule_metric_names() - served - set(worker) - PROMETHEUS_OWN
    assert missing == set()
