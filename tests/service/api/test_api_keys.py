"""API keys over HTTP, on SQLite and Postgres: the admin API makes, lists and revokes them, a made key
serves its namespace at once and a revoked one is refused at its next request, REVERIE_API_KEYS keep
working beside them, and the dashboard's Keys page lists them (never the keys) for a signed-in admin."""

from __future__ import annotations

import re
import uuid

import pytest
from fastapi.testclient import TestClient

from service.api import admin_session
from service.app import create_app
from service.config import Settings

pytestmark = [pytest.mark.model]

ADMIN = {"Authorization": "Bearer keys-admin-key-0123"}


@pytest.fixture
def client(tmp_path, tiny_model_dir, database_url):
    settings = Settings(
        data_dir=tmp_path / "data", database_url=database_url, model=str(tiny_model_dir), api_keys="env-key:envns",
        admin_key=ADMIN["Authorization"].split()[1], scheduler=False, embedded_worker=False, auth_failures_per_minute=0,
    )
    with TestClient(create_app(settings), follow_redirects=False) as test_client:
        yield test_client


def models(client: TestClient, key: str) -> int:
    return client.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code


def test_made_listed_and_revoked_through_the_admin_api(client):
    made = client.post("/admin/api/keys", json={"namespace": "alice", "label": "laptop"}, headers=ADMIN)
    assert made.status_code == 201, made.text
    created = made.json()
    key = created["key"]
    assert created["namespace"] == "alice" and created["label"] == "laptop" and key.startswith(created["prefix"])
    assert models(client, key) == 200 and models(client, "env-key") == 200
    listed = client.get("/admin/api/keys", headers=ADMIN).json()["items"]
    assert [(k["id"], k["revoked_at"]) for k in listed] == [(created["id"], None)] and key not in str(listed)
    assert "key" not in listed[0]

    revoked = client.delete(f"/admin/api/keys/{created['id']}", headers=ADMIN)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    refused = client.get("/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert models(client, "env-key") == 200
    assert client.get("/admin/api/keys", params={"include_revoked": False}, headers=ADMIN).json()["items"] == []
    assert client.delete(f"/admin/api/keys/{uuid.uuid4()}", headers=ADMIN).status_code == 404

    for body in ({"namespace": "../etc"}, {"namespace": "a", "label": "x" * 201}, {}):
        bad = client.post("/admin/api/keys", json=body, headers=ADMIN)
        assert bad.status_code == 400 and bad.json()["error"]["param"] in ("namespace", "label")
    for key_tried in ("env-key", created["key"]):  # a user key, live or not, opens no admin route
        assert client.post("/admin/api/keys", json={"namespace": "x"}, headers={"Authorization": f"Bearer {key_tried}"}).status_code == 401


def test_the_keys_page_lists_creates_through_the_api_and_revokes(client):
    response = client.post("/admin/login", data={"key": ADMIN["Authorization"].split()[1], "next": "/admin/keys"})
    assert response.status_code == 303 and response.headers["location"] == "/admin/keys"
    page = client.get("/admin/keys")
    assert page.status_code == 200 and 'id="create-key"' in page.text and "No API keys in the store" in page.text
    assert "REVERIE_API_KEYS holds 1 more key," in page.text and 'href="/admin/keys" aria-current="page"' in page.text
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)

    # what the page's form does: POST with the session's CSRF token
    assert client.post("/admin/api/keys", json={"namespace": "alice"}).status_code == 403
    first = client.post("/admin/api/keys", json={"namespace": "alice", "label": "<b>ci</b>"},
                        headers={admin_session.CSRF_HEADER: csrf}).json()
    second = client.post("/admin/api/keys", json={"namespace": "bob"}, headers={admin_session.CSRF_HEADER: csrf}).json()
    page = client.get("/admin/keys").text
    assert first["prefix"] + "…" in page and second["prefix"] + "…" in page
    assert first["key"] not in page and second["key"] not in page
    assert "&lt;b&gt;ci&lt;/b&gt;" in page and "<b>ci</b>" not in page  # labels are escaped
    assert page.count('class="danger revoke-key"') == 2 and f'data-key-id="{first["id"]}"' in page
    assert '<option value="bob"' in page  # the namespace filter offers the keys' namespaces

    # the Revoke button's call
    assert client.delete(f"/admin/api/keys/{first['id']}", headers={admin_session.CSRF_HEADER: csrf}).status_code == 200
    assert models(client, first["key"]) == 401 and models(client, second["key"]) == 200
    page = client.get("/admin/keys").text
    assert page.count('class="danger revoke-key"') == 1 and "revoked" in page
    only_bob = client.get("/admin/keys", params={"namespace": "bob"}).text
    assert second["prefix"] in only_bob and first["prefix"] not in only_bob
    assert client.get("/admin/keys", params={"namespace": "../x"}).status_code == 400

    client.cookies.clear()
    assert client.get("/admin/keys").headers["location"] == "/admin/login?next=%2Fadmin%2Fkeys"
