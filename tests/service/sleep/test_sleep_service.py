"""The daemon falls asleep and wakes up with new memory: POST /sleep, the embedded worker running the
real recipe (tiny model, a few steps), the publish transaction, the hot-swap, and rollback."""

from __future__ import annotations

import time
import uuid

import httpx
import openai
import pytest
from sqlalchemy import select

from service.app import create_app
from service.config import Settings
from service.store.db import make_engine, make_sessionmaker
from service.store.episodes import upsert_episodes
from service.store.models import AdapterEpisode, Episode
from tests.factories import make_record
from tests.servers import REPO, server_in_thread

pytestmark = [pytest.mark.model]

TINY_SLEEP = str(REPO / "tests" / "data" / "tiny-sleep.yaml")
ADMIN = {"Authorization": "Bearer adm"}


def chat(base_url: str, key: str, text: str) -> str:
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0)
    return client.chat.completions.create(
        model="reverie", messages=[{"role": "user", "content": text}], max_tokens=6, temperature=0
    ).id


def wait_for_run(base_url: str, run_id: str, timeout_s: float = 300) -> tuple[dict, list[tuple]]:
    seen = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = httpx.get(f"{base_url}/sleep/{run_id}", headers=ADMIN).json()
        progress = (run["state"], run["progress"]["phase"], run["progress"]["step"])
        if not seen or seen[-1] != progress:
            seen.append(progress)
        if run["state"] in ("published", "rejected", "failed", "cancelled"):
            return run, seen
        time.sleep(0.1)
    raise TimeoutError(f"run {run_id} did not finish: {seen[-3:]}")


def wait_served(app, namespace: str, name: str | None, timeout_s: float = 30) -> None:
    """`published` is committed before the engine swaps; the swap follows within moments."""
    deadline = time.monotonic() + timeout_s
    while app.state.engine.active_adapter(namespace) != name and time.monotonic() < deadline:
        time.sleep(0.05)
    assert app.state.engine.active_adapter(namespace) == name


def episode(sessions, completion_id: str) -> Episode:
    with sessions() as session:
        return session.get(Episode, uuid.UUID(completion_id.removeprefix("chatcmpl-")))


@pytest.fixture
def sleepy_server(tmp_path, tiny_model_dir, database_url):
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        model=str(tiny_model_dir),
        api_keys="ka:alpha,kb:beta",
        admin_key="adm",
        sleep_config=TINY_SLEEP,
        scheduler=False,
        adapter_sync_interval_s=0.5,
    )
    app = create_app(settings)
    engine = make_engine(database_url)
    with server_in_thread(app) as base_url:
        yield base_url, app, make_sessionmaker(engine)
    engine.dispose()


def test_sleep_publishes_swaps_and_rolls_back(sleepy_server):
    base_url, app, sessions = sleepy_server
    told = [chat(base_url, "ka", f"My cousin Varo Tesk keeps {n} goats in Ulm.") for n in (3, 4)]
    beta_before = chat(base_url, "kb", "Hello there.")

    assert httpx.post(f"{base_url}/sleep", json={"namespace": "alpha"}).status_code == 401
    assert httpx.post(f"{base_url}/sleep", json={"namespace": "alpha"}, headers={"Authorization": "Bearer ka"}).status_code == 401
    queued = httpx.post(f"{base_url}/sleep", json={"namespace": "alpha"}, headers=ADMIN)
    assert queued.status_code == 202 and queued.json()["state"] in ("queued", "running")
    again = httpx.post(f"{base_url}/sleep", json={"namespace": "alpha"}, headers=ADMIN)
    assert again.status_code == 200 and again.json()["id"] == queued.json()["id"]

    run, seen = wait_for_run(base_url, queued.json()["id"])
    assert run["state"] == "published", run["error"]
    assert any(state == "running" and phase for state, phase, _ in seen), seen  # progress was reported
    assert run["metrics"]["episodes"] == 2 and "recall" in run["metrics"]

    # lineage and consolidation in the store
    with sessions() as session:
        lineage = {row.episode_id for row in session.scalars(select(AdapterEpisode))}
    assert lineage == {uuid.UUID(i.removeprefix("chatcmpl-")) for i in told}
    assert all(str(episode(sessions, i).consolidated_by) == run["id"] for i in told)
    assert episode(sessions, beta_before).consolidated_by is None

    # served: alpha by v1, beta still by the base model
    wait_served(app, "alpha", "mem-alpha-v1")
    assert app.state.engine.active_adapter("beta") is None
    assert episode(sessions, chat(base_url, "ka", "What about Varo?")).adapter_version == 1
    assert episode(sessions, chat(base_url, "kb", "Hi.")).adapter_version is None

    # a second night grows v2 on top of v1
    second = httpx.post(f"{base_url}/sleep", json={"namespace": "alpha"}, headers=ADMIN).json()
    run2, _ = wait_for_run(base_url, second["id"])
    assert run2["state"] == "published", run2["error"]
    adapters = httpx.get(f"{base_url}/admin/api/adapters", params={"namespace": "alpha"}, headers=ADMIN).json()["items"]
    assert [(a["version"], a["state"], a["parent_version"]) for a in adapters] == [(2, "active", 1), (1, "candidate", None)]
    wait_served(app, "alpha", "mem-alpha-v2")
    assert adapters[0]["experts"] == 2

    # rollback to v1: served before the reply returns
    rolled = httpx.post(f"{base_url}/admin/api/adapters/1/activate", params={"namespace": "alpha"}, headers=ADMIN)
    assert rolled.status_code == 200 and rolled.json()["state"] == "active"
    assert rolled.json()["returned_to_backlog"] == run2["metrics"]["episodes"]  # what only v2 learned
    assert app.state.engine.active_adapter("alpha") == "mem-alpha-v1"
    assert episode(sessions, chat(base_url, "ka", "And now?")).adapter_version == 1
    missing = httpx.post(f"{base_url}/admin/api/adapters/7/activate", params={"namespace": "alpha"}, headers=ADMIN)
    assert missing.status_code == 404


def test_sleep_with_nothing_new_is_cancelled(sleepy_server):
    base_url, _, sessions = sleepy_server
    refused = httpx.post(f"{base_url}/sleep", headers=ADMIN)  # `default` has no episodes at all
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "namespace_not_found"
    with sessions() as session, session.begin():  # an episode, but none complete: nothing to learn
        upsert_episodes(session=session, records=[make_record("default", status="error")])
    queued = httpx.post(f"{base_url}/sleep", headers=ADMIN)
    assert queued.status_code == 202 and queued.json()["namespace"] == "default"
    run, _ = wait_for_run(base_url, queued.json()["id"])
    assert run["state"] == "cancelled" and "nothing to consolidate" in run["error"]
    assert httpx.get(f"{base_url}/sleep/{uuid.uuid4()}", headers=ADMIN).status_code == 404
