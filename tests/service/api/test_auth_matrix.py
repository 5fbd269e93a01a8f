"""Every route × {no key, a user key, another namespace's user key, the admin key}: no request gets a
2xx it is not entitled to. Routes are read from the app itself, so a new route is covered by default."""

from __future__ import annotations

import uuid

import httpx
import pytest

from service.app import create_app, http_routes
from service.config import Settings
from service.store.db import upgrade
from tests.figures import record_figure
from tests.servers import server_in_thread

pytestmark = [pytest.mark.model]

CREDENTIALS = {
    "none": {},
    "user": {"Authorization": "Bearer key-a"},
    "other namespace": {"Authorization": "Bearer key-b"},
    "admin": {"Authorization": "Bearer the-admin"},
}
PUBLIC = {"/healthz", "/readyz", "/admin/login", "/admin/static"}
USER_ROUTES = ("/v1/",)
CHAT = {"model": "reverie", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def allowed(path: str) -> set[str]:
    if path in PUBLIC or path.startswith("/admin/static") or path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
        return set(CREDENTIALS)
    if path.startswith(USER_ROUTES):
        return {"user", "other namespace"}
    return {"admin"}


def concrete(path: str) -> str:
    return (path.replace("{run_id}", str(uuid.uuid4())).replace("{episode_id}", str(uuid.uuid4()))
            .replace("{version}", "1").replace("{namespace}", "a").replace("{conversation_id}", "c1")
            .replace("{path:path}", "dashboard.css"))


def test_no_unauthorised_2xx(tmp_path, tiny_model_dir):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    settings = Settings(
        data_dir=tmp_path / "data", database_url=url, model=str(tiny_model_dir), api_keys="key-a:a,key-b:b",
        admin_key="the-admin", scheduler=False, embedded_worker=False, auth_failures_per_minute=0,
    )
    app = create_app(settings)
    routes = sorted({(route.path, method) for route in http_routes(app.routes) for method in route.methods if method != "HEAD"})
    assert len(routes) >= 20
    results = []
    with server_in_thread(app) as base_url, httpx.Client(base_url=base_url, timeout=60) as http:
        for path, method in sorted(routes):
            for name, headers in CREDENTIALS.items():
                body = CHAT if path == "/v1/chat/completions" else ({} if method in ("POST", "PUT", "PATCH") else None)
                response = http.request(method, concrete(path), json=body, headers=headers, follow_redirects=False)
                results.append((method, path, name, response.status_code))
    unauthorised = [r for r in results if 200 <= r[3] < 300 and r[2] not in allowed(r[1])]
    summary = {"requests": len(results), "routes": len(routes), "unauthorised_2xx": len(unauthorised)}
    record_figure("auth matrix", **summary, credentials=list(CREDENTIALS))
    assert unauthorised == []
    # and the entitled ones do get in where the route exists for them
    assert ("POST", "/v1/chat/completions", "user", 200) in results
    assert ("GET", "/admin/api/backlog", "admin", 200) in results
    refused = {(m, p, n): s for m, p, n, s in results}
    assert refused[("GET", "/admin/api/backlog", "user")] == 401
    assert refused[("GET", "/admin", "admin")] in (200, 303)
