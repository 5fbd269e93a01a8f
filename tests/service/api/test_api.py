"""The OpenAI-compatible API over a real uvicorn server, the official `openai` client and Postgres."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import openai
import pytest
from sqlalchemy import select

from service.app import create_app
from service.config import Settings
from service.store.db import make_engine, make_sessionmaker
from service.store.models import Episode
from tests.servers import server_in_thread

pytestmark = [pytest.mark.db, pytest.mark.model]

KEYS = {"sk-alpha": "alpha", "sk-beta": "beta"}
ADMIN = "admin-secret"


@pytest.fixture(scope="module")
def pg_url():
    from service.store.db import upgrade
    from tests.db import fresh_postgres_database

    with fresh_postgres_database() as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="module")
def server(tiny_model_dir, pg_url, tmp_path_factory):
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        database_url=pg_url,
        model=str(tiny_model_dir),
        api_keys=",".join(f"{k}:{v}" for k, v in KEYS.items()),
        admin_key=ADMIN,
        max_body_bytes=64_000,
        default_max_tokens=16,
    )
    app = create_app(settings)
    with server_in_thread(app) as base_url:
        yield base_url, app


@pytest.fixture(scope="module")
def sessions(pg_url):
    engine = make_engine(pg_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def episode_for(sessions, completion_id: str) -> Episode:
    import uuid

    with sessions() as session:
        return session.get(Episode, uuid.UUID(completion_id.removeprefix("chatcmpl-")))


def episodes_count(sessions) -> int:
    with sessions() as session:
        return len(session.scalars(select(Episode.id)).all())


def client(base_url: str, key: str = "sk-alpha") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0)


MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say something."}]


def test_sync_client_records_one_complete_episode(server, sessions):
    base_url, _ = server
    reply = client(base_url).chat.completions.create(model="reverie", messages=MESSAGES, max_tokens=8, temperature=0)
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    episode = episode_for(sessions, reply.id)
    assert episode.status == "complete"
    assert episode.namespace == "alpha"
    assert episode.messages == MESSAGES
    assert episode.response == reply.choices[0].message.content
    assert (episode.prompt_tokens, episode.completion_tokens) == (reply.usage.prompt_tokens, reply.usage.completion_tokens)
    assert episode.latency_ms > 0


async def test_async_client_and_namespace_from_key(server, sessions):
    base_url, _ = server
    async_client = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key="sk-beta", max_retries=0)
    replies = await asyncio.gather(
        *(async_client.chat.completions.create(model="reverie", messages=MESSAGES, max_tokens=4) for _ in range(3))
    )
    for reply in replies:
        episode = episode_for(sessions, reply.id)
        assert (episode.status, episode.namespace) == ("complete", "beta")
        assert episode.response == reply.choices[0].message.content
    await async_client.close()


def test_streaming_with_usage(server, sessions):
    base_url, _ = server
    stream = client(base_url).chat.completions.create(
        model="reverie", messages=MESSAGES, max_tokens=10, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish and finish[0] in ("stop", "length")
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    episode = episode_for(sessions, chunks[0].id)
    assert (episode.status, episode.response) == ("complete", text)
    assert episode.completion_tokens == chunks[-1].usage.completion_tokens
    # the same text as the non-streamed greedy reply
    plain = client(base_url).chat.completions.create(model="reverie", messages=MESSAGES, max_tokens=10, temperature=0)
    assert plain.choices[0].message.content == text


def test_stream_wire_format(server):
    base_url, _ = server
    body = {"model": "reverie", "messages": MESSAGES, "max_tokens": 3, "stream": True}
    with httpx.stream("POST", f"{base_url}/v1/chat/completions", json=body, headers={"Authorization": "Bearer sk-alpha"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    first = json.loads(lines[0].removeprefix("data: "))
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert "usage" not in first  # only with stream_options.include_usage


def test_models_and_health(server):
    base_url, _ = server
    models = client(base_url).models.list()
    assert [m.id for m in models.data] == ["reverie"]
    assert httpx.get(f"{base_url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{base_url}/readyz").json()["store"] == "ok"


def test_seed_makes_sampling_reproducible(server):
    base_url, _ = server
    ask = lambda seed: client(base_url).chat.completions.create(  # noqa: E731
        model="reverie", messages=MESSAGES, max_tokens=12, temperature=1.0, seed=seed
    ).choices[0].message.content
    assert ask(7) == ask(7)


def test_stop_sequence(server):
    base_url, _ = server
    # seeded sampling: the random model's greedy text is only newlines
    ask = dict(model="reverie", messages=MESSAGES, max_tokens=12, temperature=1.0, seed=11)
    text = client(base_url).chat.completions.create(**ask).choices[0].message.content
    # a stop string from the middle of the greedy text, starting at a visible character
    start = next(i for i in range(len(text) // 3, len(text)) if not text[i].isspace())
    stop = text[start : start + 2]
    cut = client(base_url).chat.completions.create(**ask, stop=[stop])
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].message.content == text[: text.index(stop)]


@pytest.mark.parametrize(
    "body, param_or_message",
    [
        (b"{not json", "not valid JSON"),
        (json.dumps({"model": "reverie"}), "messages"),
        (json.dumps({"model": "reverie", "messages": []}), "messages"),
        (json.dumps({"model": "reverie", "messages": [{"role": "wizard", "content": "x"}]}), "messages.0.role"),
        (json.dumps({"model": "reverie", "messages": "hello"}), "messages"),
        (json.dumps({"model": "reverie", "messages": MESSAGES, "max_tokens": "many"}), "max_tokens"),
        (json.dumps({"model": "reverie", "messages": MESSAGES, "temperature": 9}), "temperature"),
        (json.dumps({"model": "reverie", "messages": MESSAGES, "n": 5}), "n"),  # over REVERIE_MAX_CHOICES
        (json.dumps({"model": "reverie", "messages": MESSAGES, "max_tokens": 100_000}), "max_tokens"),
    ],
)
def test_bad_requests_get_400_and_record_nothing(server, sessions, body, param_or_message):
    base_url, _ = server
    before = episodes_count(sessions)
    r = httpx.post(
        f"{base_url}/v1/chat/completions",
        content=body,
        headers={"Authorization": "Bearer sk-alpha", "Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert param_or_message in (error.get("param") or "") or param_or_message in error["message"]
    assert episodes_count(sessions) == before


def test_unknown_model_is_404(server):
    base_url, _ = server
    with pytest.raises(openai.NotFoundError) as caught:
        client(base_url).chat.completions.create(model="gpt-9", messages=MESSAGES)
    assert caught.value.body["code"] == "model_not_found"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {ADMIN}"}])
def test_missing_or_wrong_key_is_401(server, headers):
    base_url, _ = server
    r = httpx.post(f"{base_url}/v1/chat/completions", json={"model": "reverie", "messages": MESSAGES}, headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"


def test_oversized_body_is_413(server, sessions):
    base_url, _ = server
    before = episodes_count(sessions)
    huge = {"model": "reverie", "messages": [{"role": "user", "content": "x" * 100_000}]}
    r = httpx.post(f"{base_url}/v1/chat/completions", json=huge, headers={"Authorization": "Bearer sk-alpha"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    assert episodes_count(sessions) == before
    # still serving
    assert client(base_url).chat.completions.create(model="reverie", messages=MESSAGES, max_tokens=2).choices


def test_idempotency_key_records_once_and_replays(server, sessions):
    base_url, _ = server
    headers = {"Idempotency-Key": "order-42"}
    first = client(base_url).chat.completions.create(
        model="reverie", messages=MESSAGES, max_tokens=6, temperature=1.0, extra_headers=headers
    )
    before = episodes_count(sessions)
    again = client(base_url).chat.completions.create(
        model="reverie", messages=MESSAGES, max_tokens=6, temperature=1.0, extra_headers=headers
    )
    assert again.id == first.id
    assert again.choices[0].message.content == first.choices[0].message.content
    assert episodes_count(sessions) == before
    streamed = client(base_url).chat.completions.create(
        model="reverie", messages=MESSAGES, max_tokens=6, temperature=1.0, stream=True, extra_headers=headers
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == first.choices[0].message.content
    # another namespace has its own keys
    other = client(base_url, "sk-beta").chat.completions.create(
        model="reverie", messages=MESSAGES, max_tokens=2, extra_headers=headers
    )
    assert other.id != first.id


def test_admin_api_needs_the_admin_key(server):
    base_url, _ = server
    for path in ("/admin/api/episodes", "/admin/api/backlog"):
        assert httpx.get(f"{base_url}{path}").status_code == 401
        assert httpx.get(f"{base_url}{path}", headers={"Authorization": "Bearer sk-alpha"}).status_code == 401


def test_admin_episodes_and_backlog(server):
    base_url, _ = server
    reply = client(base_url, "sk-beta").chat.completions.create(model="reverie", messages=MESSAGES, max_tokens=3)
    auth = {"Authorization": f"Bearer {ADMIN}"}
    items = httpx.get(f"{base_url}/admin/api/episodes", params={"namespace": "beta", "limit": 5}, headers=auth).json()["items"]
    assert items[0]["id"].replace("-", "") == reply.id.removeprefix("chatcmpl-")
    created = [item["created_at"] for item in items]
    assert created == sorted(created, reverse=True)
    backlog = {b["namespace"]: b for b in httpx.get(f"{base_url}/admin/api/backlog", headers=auth).json()["items"]}
    assert backlog["beta"]["episodes"] >= 1 and backlog["beta"]["tokens"] > 0 and backlog["beta"]["oldest_age_s"] >= 0
    bad = httpx.get(f"{base_url}/admin/api/episodes", params={"status": "bogus"}, headers=auth)
    assert bad.status_code == 400


def test_405_names_every_method_of_the_path(server):
    base_url, _ = server
    r = httpx.request("OPTIONS", f"{base_url}/admin/api/episodes/{uuid.uuid4()}", headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 405
    assert r.headers["allow"] == "DELETE, GET" and r.json()["error"]["type"] == "invalid_request_error"
