"""The admin API and dashboard with hostile input (far dates, huge offsets, NUL bytes) answer 400, and
with the store down 503 `store_unavailable`: never a 500. SQLite and Postgres."""

from __future__ import annotations

import httpx
import pytest

from service.app import create_app
from service.config import Settings
from tests.figures import record_figure
from tests.servers import server_in_thread

pytestmark = [pytest.mark.model]

ADMIN_KEY = "adm-0123456789abcdef"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}

HOSTILE = [
    ("/admin/api/episodes", {"until": "9999-12-31"}),
    ("/admin/api/episodes", {"offset": str(2**63)}),
    ("/admin/api/episodes", {"q": "a\x00b"}),
    ("/admin/api/episodes", {"namespace": "a\x00b"}),
    ("/admin/api/runs", {"namespace": "\x00"}),
    ("/admin/api/stats", {"days": str(10**20)}),
]
PAGES = [
    ("/admin/episodes", {"until": "9999-12-31"}),
    ("/admin/episodes", {"since": "0001-01-01T00:00:00+05:00"}),
    ("/admin/episodes", {"offset": str(2**63)}),
    ("/admin/episodes", {"q": "a\x00b"}),
    ("/admin/episodes", {"namespace": "a\x00b"}),
    ("/admin/runs", {"namespace": "\x00"}),
    ("/admin/adapters", {"namespace": "\x00"}),
    ("/admin/episodes", {"namespace": "../../etc"}),
    ("/admin/runs", {"namespace": "a b"}),
]


def settings_for(tmp_path, model_dir, database_url) -> Settings:
    return Settings(
        data_dir=tmp_path / "data", database_url=database_url, model=str(model_dir), admin_key=ADMIN_KEY,
        api_keys="k1:one", scheduler=False, embedded_worker=False,
    )


def test_hostile_admin_inputs_are_400(tmp_path, tiny_model_dir, database_url):
    with server_in_thread(create_app(settings_for(tmp_path, tiny_model_dir, database_url))) as base_url:
        for path, params in HOSTILE:
            r = httpx.get(f"{base_url}{path}", params=params, headers=ADMIN)
            assert r.status_code == 400, (path, params, r.text)
            assert r.json()["error"]["type"] == "invalid_request_error"
        r = httpx.delete(f"{base_url}/admin/api/namespaces/one/conversations/a%00b", headers=ADMIN)
        assert r.status_code == 400, r.text
        with httpx.Client(base_url=base_url) as browser:
            assert browser.post("/admin/login", data={"key": ADMIN_KEY}).status_code == 303
            for path, params in PAGES:
                r = browser.get(path, params=params)
                assert r.status_code == 400, (path, params, r.text[:300])
    record_figure(f"hostile admin inputs ({database_url.split(':')[0]})", requests=len(HOSTILE) + 1 + len(PAGES), answered_400=len(HOSTILE) + 1 + len(PAGES), server_errors=0)


def test_admin_routes_answer_503_while_the_store_is_down(tmp_path, tiny_model_dir):
    down = "postgresql://root@127.0.0.1:1/nowhere"
    with server_in_thread(create_app(settings_for(tmp_path, tiny_model_dir, down))) as base_url:
        for method, path in [
            ("GET", "/admin/api/episodes"), ("GET", "/admin/api/backlog"), ("GET", "/admin/api/runs"),
            ("GET", "/admin/api/adapters"), ("GET", "/admin/api/stats"), ("POST", "/sleep"),
        ]:
            r = httpx.request(method, f"{base_url}{path}", headers=ADMIN, json={"namespace": "one"} if method == "POST" else None)
            assert r.status_code == 503, (path, r.text)
            error = r.json()["error"]
            assert error["code"] == "store_unavailable" and "nowhere" not in r.text and "127.0.0.1" not in r.text
