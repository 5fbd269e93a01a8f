"""Probe results of issue 25, each over a real uvicorn server: bad input gets a clear 4xx, a 5xx body
never carries exception text, and the headers a client relies on are well-formed."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from service.app import create_app
from service.config import Settings
from service.errors import EngineError
from service.serving.engines.local import LocalEngine
from service.serving.limits import retry_after_headers
from service.serving.protocol import ChatCompletionRequest
from service.store.db import upgrade
from tests.servers import server_in_thread

pytestmark = [pytest.mark.model]

ADMIN_KEY = "adm-0123456789abcdef"
MESSAGES = [{"role": "user", "content": "Hello."}]


def settings_for(data, model_dir, **overrides) -> Settings:
    values = dict(
        data_dir=data, database_url=f"sqlite:///{data / 'store.db'}", model=str(model_dir), api_keys="k1:one,k2:two",
        admin_key=ADMIN_KEY, scheduler=False, embedded_worker=False, max_body_bytes=4096, default_max_tokens=4,
    )
    values.update(overrides)
    settings = Settings(**values)
    upgrade(settings.resolved_database_url)
    return settings


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    with server_in_thread(create_app(settings_for(tmp_path_factory.mktemp("hardening"), tiny_model_dir))) as base_url:
        yield base_url


def chat(base_url, body, key="k1", **kwargs):
    return httpx.post(
        f"{base_url}/v1/chat/completions", json={"model": "reverie", "messages": MESSAGES, **body},
        headers={"Authorization": f"Bearer {key}"}, timeout=60, **kwargs,
    )


@pytest.mark.parametrize("seed", [2**64, -(2**63) - 1, 10**30])
def test_seed_beyond_64_bits_is_400(server, seed):
    r = chat(server, {"seed": seed, "max_tokens": 2})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "seed"


@pytest.mark.parametrize("seed", [2**64 - 1, -(2**63), 0])
def test_seed_within_64_bits_is_served(server, seed):
    assert chat(server, {"seed": seed, "max_tokens": 2}).status_code == 200


class LeakyEngine(LocalEngine):
    """An engine whose error carries what a client must not see (an exception text with a path)."""

    async def generate(self, request):
        raise EngineError("generation failed: OSError: [Errno 5] /srv/reverie/secret/model.safetensors")
        yield  # pragma: no cover


def test_no_exception_text_in_a_5xx_body(tiny_model_dir, tmp_path, caplog):
    caplog.set_level(logging.ERROR)
    app = create_app(settings_for(tmp_path, tiny_model_dir), engine=LeakyEngine(tiny_model_dir))
    with server_in_thread(app) as base_url:
        plain = chat(base_url, {"max_tokens": 2})
        with httpx.stream(
            "POST", f"{base_url}/v1/chat/completions", headers={"Authorization": "Bearer k1"},
            json={"model": "reverie", "messages": MESSAGES, "max_tokens": 2, "stream": True},
        ) as streamed:
            streamed_body = streamed.read().decode()
    assert plain.status_code == 500 and plain.json()["error"]["code"] == "engine_error"
    for body in (plain.text, streamed_body):
        assert "secret" not in body and "Errno" not in body and "OSError" not in body
    assert "/srv/reverie/secret" in caplog.text  # the operator still sees it


def test_chunked_body_over_the_limit_is_413(server):
    def chunks():
        for _ in range(10):
            yield b" " * 1000

    r = httpx.post(f"{server}/v1/chat/completions", content=chunks(), headers={"Authorization": "Bearer k1"}, timeout=30)
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "request_too_large"


def test_chunked_body_under_the_limit_is_served(server):
    import json

    def chunks():
        yield json.dumps({"model": "reverie", "messages": MESSAGES, "max_tokens": 2}).encode()

    r = httpx.post(
        f"{server}/v1/chat/completions", content=chunks(), timeout=60,
        headers={"Authorization": "Bearer k1", "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text


def test_retry_after_is_rounded_up():
    assert retry_after_headers(1.2) == {"Retry-After": "2", "retry-after-ms": "1200"}
    assert retry_after_headers(0.0004) == {"Retry-After": "1", "retry-after-ms": "1"}


def test_rate_limited_429_says_when_to_retry_never_too_early(tiny_model_dir, tmp_path):
    # 40 a minute: an empty bucket waits up to 1.5 s, which `round` made 1 s (too early).
    app = create_app(settings_for(tmp_path, tiny_model_dir, rate_limit_per_minute=40))
    with server_in_thread(app) as base_url:

        async def burst():
            async with httpx.AsyncClient(timeout=60) as http:
                body = {"model": "reverie", "messages": MESSAGES, "max_tokens": 1}
                headers = {"Authorization": "Bearer k1"}
                return await asyncio.gather(
                    *(http.post(f"{base_url}/v1/chat/completions", json=body, headers=headers) for _ in range(50))
                )

        refused = [r for r in asyncio.run(burst()) if r.status_code == 429]
    assert refused
    for r in refused:
        wait_ms = int(r.headers["retry-after-ms"])
        assert 0 < wait_ms <= 1500
        assert int(r.headers["Retry-After"]) * 1000 >= wait_ms


def test_full_queue_429_carries_retry_after(tiny_model_dir, tmp_path):
    app = create_app(settings_for(tmp_path, tiny_model_dir, max_queue=1))
    with server_in_thread(app) as base_url:

        async def burst():
            async with httpx.AsyncClient(timeout=60) as http:
                body = {"model": "reverie", "messages": MESSAGES, "max_tokens": 60, "temperature": 1.0}
                headers = {"Authorization": "Bearer k1"}
                return await asyncio.gather(
                    *(http.post(f"{base_url}/v1/chat/completions", json=body, headers=headers) for _ in range(8))
                )

        responses = asyncio.run(burst())
    full = [r for r in responses if r.status_code == 429]
    assert full and all(r.json()["error"]["code"] == "queue_full" for r in full)
    assert all(int(r.headers["Retry-After"]) >= 1 and int(r.headers["retry-after-ms"]) >= 1 for r in full)


@pytest.mark.parametrize(
    "given, kept",
    [
        ("req-abc-123", True),
        ("0f8fad5b-d9cb-469f-a165-70867728950e", True),
        ("evil\tid", False),
        ("id;rm -rf", False),
        ('"><script>', False),
        ("a b", False),
        ("x" * 129, False),
        ("", False),
    ],
)
def test_request_id_accepted_only_in_a_safe_shape(server, given, kept):
    r = httpx.get(f"{server}/healthz", headers={"X-Request-Id": given.encode("latin-1")})
    if kept:
        assert r.headers["x-request-id"] == given
    else:
        assert r.headers["x-request-id"] != given and len(r.headers["x-request-id"]) == 32


def test_unknown_fields_are_logged_in_one_line_per_request(caplog):
    caplog.set_level(logging.INFO, logger="service.serving.protocol")
    for _ in range(2):
        ChatCompletionRequest.model_validate(
            {"model": "reverie", "messages": MESSAGES, "tools_x": 1, "parallel_x": True, "zeta": None}
        )
    lines = [r.getMessage() for r in caplog.records if "OpenAI does not define" in r.getMessage()]
    assert len(lines) == 2  # each request, not each field, and not only the first time a name is seen
    assert all("'parallel_x'" in line and "'tools_x'" in line and "'zeta'" in line for line in lines)
    import service.serving.protocol as protocol

    assert not [name for name, value in vars(protocol).items() if isinstance(value, set)]


def test_a_request_without_unknown_fields_logs_nothing_about_them(caplog):
    caplog.set_level(logging.INFO, logger="service.serving.protocol")
    ChatCompletionRequest.model_validate({"model": "reverie", "messages": MESSAGES, "top_p": 0.5, "user": "u"})
    assert not [r for r in caplog.records if "OpenAI does not define" in r.getMessage()]


ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.mark.parametrize("namespace", ["../../etc", "a/b", "", " ", "x" * 65, "ns\x00"])
def test_sleep_refuses_an_invalid_namespace(server, namespace):
    r = httpx.post(f"{server}/sleep", json={"namespace": namespace}, headers=ADMIN)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "namespace"


@pytest.mark.parametrize("path", ["/admin/api/episodes", "/admin/api/runs", "/admin/api/adapters", "/admin/api/stats"])
def test_admin_filters_refuse_an_invalid_namespace(server, path):
    r = httpx.get(f"{server}{path}", params={"namespace": "../../etc"}, headers=ADMIN)
    assert r.status_code == 400, r.text


def test_sleep_for_a_namespace_without_episodes_is_refused(server):
    r = httpx.post(f"{server}/sleep", json={"namespace": "nobody"}, headers=ADMIN)
    assert r.status_code == 404 and r.json()["error"]["code"] == "namespace_not_found"
    assert httpx.get(f"{server}/admin/api/runs", params={"namespace": "nobody"}, headers=ADMIN).json()["items"] == []
    assert chat(server, {"max_tokens": 1}, key="k2").status_code == 200  # namespace `two` now has an episode
    r = httpx.post(f"{server}/sleep", json={"namespace": "two"}, headers=ADMIN)
    assert r.status_code == 202, r.text


def test_wrong_keys_are_throttled_per_client(tiny_model_dir, tmp_path):
    app = create_app(settings_for(tmp_path, tiny_model_dir, auth_failures_per_minute=3))
    with server_in_thread(app) as base_url:
        wrong = [chat(base_url, {"max_tokens": 1}, key=f"guess-{n}").status_code for n in range(3)]
        assert wrong == [401, 401, 401]
        throttled = chat(base_url, {"max_tokens": 1}, key="guess-4")
        assert throttled.status_code == 429 and throttled.json()["error"]["code"] == "too_many_failed_attempts"
        assert 1 <= int(throttled.headers["Retry-After"]) <= 20 and int(throttled.headers["retry-after-ms"]) > 0
        assert chat(base_url, {"max_tokens": 1}).status_code == 429  # the right key too, from this address
        assert httpx.get(f"{base_url}/admin/api/stats", headers={"Authorization": "Bearer nope"}).status_code == 429
        login = httpx.post(f"{base_url}/admin/login", data={"key": "guess"})
        assert login.status_code == 429 and "Retry-After" in login.headers and "set-cookie" not in login.headers
        assert httpx.get(f"{base_url}/healthz").status_code == 200  # no key, no throttle


def test_wrong_admin_keys_at_sign_in_are_throttled(tiny_model_dir, tmp_path):
    app = create_app(settings_for(tmp_path, tiny_model_dir, auth_failures_per_minute=2))
    with server_in_thread(app) as base_url:
        statuses = [httpx.post(f"{base_url}/admin/login", data={"key": f"guess-{n}"}).status_code for n in range(3)]
        assert statuses == [401, 401, 429]
        assert httpx.post(f"{base_url}/admin/login", data={"key": ADMIN_KEY}).status_code == 429
        assert chat(base_url, {"max_tokens": 1}).status_code == 429


def test_the_throttle_forgets_addresses_beyond_its_bound():
    from service.serving.limits import FailureThrottle

    throttle = FailureThrottle(per_minute=5, max_clients=100)
    for n in range(1000):
        throttle.failed(f"10.0.{n // 256}.{n % 256}")
    assert len(throttle._buckets) <= 100
