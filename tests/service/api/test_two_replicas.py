"""Two real API processes (`reverie serve`, uvicorn on loopback) on one Postgres database, as replicas
behind a load balancer: a key made with the CLI or one replica's admin API works on both at once, a key
revoked on one is refused by the other at its next request, the rate limit counts both replicas'
requests as one, and a dashboard sign-out on one replica kills the cookie on the other. No restart."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from service.api.admin_session import COOKIE, CSRF_FIELD
from service.cli import main
from tests.servers import free_port, server_process

pytestmark = [pytest.mark.db, pytest.mark.model, pytest.mark.slow]

ADMIN_KEY = "two-replicas-admin-key"
PER_MINUTE = 5


def status(base_url: str, key: str) -> int:
    return httpx.get(f"{base_url}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=30).status_code


def chat(base_url: str, key: str) -> httpx.Response:
    body = {"model": "reverie", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    return httpx.post(f"{base_url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def test_two_replicas_share_keys_rate_limits_and_sign_outs(tmp_path, tiny_model_dir, postgres_url, capsys):
    env = {
        "REVERIE_DATABASE_URL": postgres_url, "REVERIE_MODEL": str(tiny_model_dir), "REVERIE_API_KEYS": "env-key:envns",
        "REVERIE_ADMIN_KEY": ADMIN_KEY, "REVERIE_SCHEDULER": "false", "REVERIE_EMBEDDED_WORKER": "false",
        "REVERIE_RATE_LIMIT_PER_MINUTE": str(PER_MINUTE), "REVERIE_AUTH_FAILURES_PER_MINUTE": "0",
        "REVERIE_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1", "REVERIE_LOG_FORMAT": "text",
    }
    port_a, port_b = free_port(), free_port()
    a, b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    with (server_process({**env, "REVERIE_DATA_DIR": str(tmp_path / "a")}, port_a, tmp_path / "a.log"),
          server_process({**env, "REVERIE_DATA_DIR": str(tmp_path / "b")}, port_b, tmp_path / "b.log")):
        # a key made with the CLI, both replicas already running: served by both at once
        assert main(["keys", "create", "--namespace", "tenant", "--database-url", postgres_url]) == 0
        key = capsys.readouterr().out.strip()
        assert status(a, key) == status(b, key) == 200
        assert status(a, "env-key") == status(b, "env-key") == 200  # REVERIE_API_KEYS still work

        # made through A's admin API, served by B; revoked on A, refused by B at its next request
        made = httpx.post(f"{a}/admin/api/keys", json={"namespace": "other"}, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert made.status_code == 201
        assert status(b, made.json()["key"]) == 200
        revoked = httpx.delete(f"{a}/admin/api/keys/{made.json()['id']}", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert revoked.status_code == 200
        assert status(b, made.json()["key"]) == 401 and status(a, made.json()["key"]) == 401
        assert status(b, key) == 200

        # one rate limit across both replicas: alternate until refused
        started, served, refused = time.monotonic(), {a: 0, b: 0}, None
        for turn in range(2 * PER_MINUTE):
            replica = (a, b)[turn % 2]
            reply = chat(replica, key)
            if reply.status_code == 429:
                refused = reply
                break
            assert reply.status_code == 200, reply.text
            served[replica] += 1
        refill = (time.monotonic() - started) * PER_MINUTE / 60  # tokens that came back meanwhile
        assert refused is not None, served
        assert PER_MINUTE <= sum(served.values()) <= PER_MINUTE + refill
        assert served[a] < PER_MINUTE and served[b] < PER_MINUTE  # neither replica reached the limit on its own
        assert refused.json()["error"]["code"] == "rate_limit_exceeded" and int(refused.headers["Retry-After"]) >= 1
        assert chat(a if refused.url.port == port_b else b, key).status_code == 429  # the other replica agrees
        assert chat(a, "env-key").status_code == 200  # another key, another bucket

        # the dashboard: signed in on A, the cookie opens B; signed out on A, it opens neither
        signed_in = httpx.post(f"{a}/admin/login", data={"key": ADMIN_KEY})
        assert signed_in.status_code == 303
        cookie = {COOKIE: signed_in.cookies[COOKIE]}
        page = httpx.get(f"{b}/admin/keys", cookies=cookie)
        assert page.status_code == 200 and "tenant" in page.text
        assert httpx.get(f"{b}/admin/api/stats", cookies=cookie).status_code == 200
        csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
        assert httpx.post(f"{a}/admin/logout", data={CSRF_FIELD: csrf}, cookies=cookie).status_code == 303
        assert httpx.get(f"{b}/admin/api/stats", cookies=cookie).status_code == 401
        assert httpx.get(f"{b}/admin/keys", cookies=cookie).headers["location"].startswith("/admin/login")
        assert httpx.get(f"{a}/admin/api/stats", cookies=cookie).status_code == 401
