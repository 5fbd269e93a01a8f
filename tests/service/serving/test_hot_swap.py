"""A memory swap under continuous load on the local engine: no failed request, and every request
that starts after the swap is answered by the new version."""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest

from service.app import create_app
from service.config import Settings
from service.store.db import make_engine, make_sessionmaker
from service.store.models import Adapter, AdapterState, Episode
from tests.adapters import make_lora
from tests.servers import server_in_thread

pytestmark = [pytest.mark.model]

ADMIN = {"Authorization": "Bearer adm"}
QUESTION = [{"role": "user", "content": "Where does Varo keep his goats?"}]


def ask(http: httpx.Client, base_url: str, stream: bool) -> tuple[str, str]:
    """Returns (completion id, text)."""
    body = {"model": "reverie", "messages": QUESTION, "max_tokens": 8, "temperature": 0, "stream": stream}
    if not stream:
        reply = http.post(f"{base_url}/v1/chat/completions", json=body)
        reply.raise_for_status()
        return reply.json()["id"], reply.json()["choices"][0]["message"]["content"]
    import json

    text, completion_id, done = "", None, False
    with http.stream("POST", f"{base_url}/v1/chat/completions", json=body) as reply:
        reply.raise_for_status()
        for line in reply.iter_lines():
            if line == "data: [DONE]":
                done = True
            elif line.startswith("data: "):
                chunk = json.loads(line[6:])
                completion_id = chunk["id"]
                text += "".join(c["delta"].get("content") or "" for c in chunk["choices"])
    assert done, "stream ended without [DONE]"
    return completion_id, text


def test_swap_under_load(tmp_path, tiny_model_dir, database_url):
    v1 = make_lora(tiny_model_dir, tmp_path / "v1", seed=1)
    v2 = make_lora(tiny_model_dir, tmp_path / "v2", seed=2)
    db = make_engine(database_url)
    sessions = make_sessionmaker(db)
    with sessions.begin() as session:
        for version, path, state in ((1, v1, AdapterState.ACTIVE), (2, v2, AdapterState.CANDIDATE)):
            session.add(Adapter(id=uuid.uuid4(), namespace="default", version=version, path=str(path), rank=4, state=state))
    settings = Settings(
        data_dir=tmp_path / "data", database_url=database_url, model=str(tiny_model_dir), admin_key="adm",
        scheduler=False, embedded_worker=False, adapter_sync_interval_s=0.2,
    )
    app = create_app(settings)
    with server_in_thread(app) as base_url, httpx.Client(timeout=60) as http:
        deadline = time.monotonic() + 30
        while app.state.engine.active_adapter("default") != "mem-default-v1" and time.monotonic() < deadline:
            time.sleep(0.05)
        text_v1 = ask(http, base_url, stream=False)[1]

        results: list[tuple[float, str, str]] = []  # (start time, id, text)
        failures: list[BaseException] = []
        stop = threading.Event()

        def client(stream: bool) -> None:
            with httpx.Client(timeout=60) as own:
                while not stop.is_set():
                    started = time.monotonic()
                    try:
                        completion_id, text = ask(own, base_url, stream)
                        results.append((started, completion_id, text))
                    except BaseException as exc:  # noqa: BLE001 - every failure counts
                        failures.append(exc)

        threads = [threading.Thread(target=client, args=(i % 2 == 0,)) for i in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        swap_sent = time.monotonic()
        swap = http.post(f"{base_url}/admin/api/adapters/2/activate", headers=ADMIN)
        swapped_at = time.monotonic()
        assert swap.status_code == 200, swap.text
        time.sleep(1.5)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        text_v2 = ask(http, base_url, stream=False)[1]

    assert failures == []
    assert text_v1 != text_v2
    with sessions() as session:
        served = [
            (started, session.get(Episode, uuid.UUID(cid.removeprefix("chatcmpl-"))).adapter_version, text)
            for started, cid, text in results
        ]
    # Each episode names the version that answered it, whatever raced the swap (the swap jumps ahead
    # of requests already waiting, so wall-clock order alone does not decide which version that is).
    assert all(text == {1: text_v1, 2: text_v2}[version] for _, version, text in served)
    after = [version for started, version, _ in served if started > swapped_at]
    before = [version for started, version, _ in served if started < swap_sent]
    assert len(after) >= 4 and set(after) == {2}
    assert len(before) >= 4 and before.count(1) >= 4  # the swap really happened under load
    db.dispose()
