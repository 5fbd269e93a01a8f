"""Request limits and per-key admission: each refusal is a clear OpenAI-shaped error."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from service.app import create_app
from service.config import Settings
from service.serving.limits import KeyLimiter, RateLimitedError
from tests.servers import server_in_thread

pytestmark = [pytest.mark.model]

MESSAGES = [{"role": "user", "content": "Hello."}]


@pytest.fixture(scope="module")
def limited(tiny_model_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("limits")
    settings = Settings(
        data_dir=data, database_url=f"sqlite:///{data / 'store.db'}", model=str(tiny_model_dir),
        api_keys="k1:one,k2:two", admin_key="adm", scheduler=False, embedded_worker=False,
        max_messages=3, max_chars=100, max_completion_tokens=20, max_choices=2, rate_limit_per_minute=4,
        max_inflight_per_key=1,
    )
    from service.store.db import upgrade

    upgrade(settings.resolved_database_url)
    with server_in_thread(create_app(settings)) as base_url:
        yield base_url


def post(base_url, body, key="k1"):
    return httpx.post(f"{base_url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)


@pytest.mark.parametrize(
    "body, code",
    [
        ({"messages": MESSAGES * 4}, "too_many_messages"),
        ({"messages": [{"role": "user", "content": "x" * 101}]}, "messages_too_long"),
        ({"messages": MESSAGES, "max_tokens": 21}, None),
        ({"messages": MESSAGES, "n": 3}, None),
    ],
)
def test_request_limits_are_400(limited, body, code):
    r = post(limited, {"model": "reverie", **body}, key="k2")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == code


def test_in_flight_cap_per_key(limited):
    async def two_at_once(key_a, key_b):
        async with httpx.AsyncClient(timeout=60) as http:
            body = {"model": "reverie", "messages": MESSAGES, "max_tokens": 20, "temperature": 1.0}
            return await asyncio.gather(*(
                http.post(f"{limited}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"})
                for key in (key_a, key_b)
            ))

    same = asyncio.run(two_at_once("k1", "k1"))
    assert sorted(r.status_code for r in same) == [200, 429]
    refused = next(r for r in same if r.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limit_exceeded" and int(refused.headers["Retry-After"]) >= 1


def test_rate_limit_per_key_with_retry_after():
    limiter = KeyLimiter(per_minute=2)
    limiter.acquire("a")()
    limiter.acquire("a")()
    with pytest.raises(RateLimitedError) as caught:
        limiter.acquire("a")
    assert 0 < caught.value.retry_after_s <= 30
    limiter.acquire("b")()  # another key has its own bucket


def test_rate_limit_over_http(limited):
    statuses = [post(limited, {"model": "reverie", "messages": MESSAGES, "max_tokens": 1}, key="k2").status_code for _ in range(6)]
    assert statuses[:2] == [200, 200] and statuses[-1] == 429
