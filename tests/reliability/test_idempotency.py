"""Idempotency-Key after a crash and on misuse: a request that died with its process leaves its
episode `pending`; past the request timeout it is aborted and the key works again. The same key with
another body is a 422 (as Stripe does), never the other request's answer. SQLite and Postgres."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import httpx

from service.app import create_app
from service.config import Settings
from service.serving.protocol import ChatCompletionRequest
from service.store.db import make_engine, make_sessionmaker
from service.store.episodes import upsert_episodes
from service.store.models import Episode, utcnow
from tests.factories import make_record
from tests.servers import server_in_thread

BODY = {"model": "reverie", "messages": [{"role": "user", "content": "Order the blue one."}], "max_tokens": 3}


def left_pending(sessions, key: str | None, age: timedelta):
    """What a crash leaves: the pending row of a request that never finished."""
    request = ChatCompletionRequest.model_validate(BODY)
    record = make_record(
        "one", messages=request.plain_messages(), params=request.recorded_params(), idempotency_key=key,
        created_at=utcnow() - age,
    )
    with sessions() as session, session.begin():
        upsert_episodes(session=session, records=[record])
    return record


def status_of(sessions, episode_id: uuid.UUID) -> str:
    with sessions() as session:
        return session.get(Episode, episode_id).status


def post(base_url, body, key):
    return httpx.post(
        f"{base_url}/v1/chat/completions", json=body, timeout=60,
        headers={"Authorization": "Bearer k1", "Idempotency-Key": key},
    )


def test_a_crashed_requests_key_works_again_and_another_body_is_422(tmp_path, tiny_model_dir, database_url):
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    crashed = left_pending(sessions, "order-7", timedelta(hours=2))
    orphan = left_pending(sessions, None, timedelta(hours=2))
    in_flight = left_pending(sessions, "order-8", timedelta(seconds=5))
    settings = Settings(
        data_dir=tmp_path / "data", database_url=database_url, model=str(tiny_model_dir), api_keys="k1:one",
        scheduler=False, embedded_worker=False, request_timeout_s=600,
    )
    try:
        with server_in_thread(create_app(settings)) as base_url:
            retried = post(base_url, BODY, "order-7")
            assert retried.status_code == 200, retried.text
            assert retried.json()["id"] == f"chatcmpl-{crashed.id.hex}"  # the same episode, now complete
            assert status_of(sessions, crashed.id) == "complete"

            replayed = post(base_url, {**BODY, "stream": False}, "order-7")
            assert replayed.status_code == 200 and replayed.json() == retried.json()

            other = {**BODY, "messages": [{"role": "user", "content": "Cancel the order."}]}
            for body in (other, {**BODY, "max_tokens": 4}):
                misused = post(base_url, body, "order-7")
                assert misused.status_code == 422, misused.text
                assert misused.json()["error"]["code"] == "idempotency_key_reused"
                assert misused.json()["error"]["param"] == "Idempotency-Key"

            busy = post(base_url, BODY, "order-8")  # younger than the timeout: still in progress
            assert busy.status_code == 409 and busy.json()["error"]["code"] == "idempotency_conflict"

            deadline = time.monotonic() + 10  # the relay's sweep at start aborts what the crash left
            while status_of(sessions, orphan.id) == "pending" and time.monotonic() < deadline:
                time.sleep(0.1)
            assert status_of(sessions, orphan.id) == "aborted"
            assert status_of(sessions, in_flight.id) == "pending"
    finally:
        engine.dispose()
