"""Dashboard sign-in: a signed, expiring session cookie opened with the admin key, and its CSRF token.

The cookie carries `{"exp", "sid", "csrf"}` signed with HMAC-SHA256 under a secret derived from the
admin key, so it needs no table, works on every replica, and every session dies when the admin key
changes. Pages send the CSRF token back in the `X-CSRF-Token` header (or a `csrf_token` form field);
the cookie is `SameSite=Strict` and `HttpOnly`, so another site can neither ride it nor read the token.
Signing out revokes the session id in this process until it would have expired anyway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass

from fastapi import Request, Response

from service.config import Settings

COOKIE = "reverie_admin"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
MAX_AGE_S = 12 * 3600


@dataclass(frozen=True)
class AdminSession:
    sid: str
    csrf: str
    expires_at: int


def _secret(admin_key: str) -> bytes:
    return hmac.new(admin_key.encode(), b"reverie dashboard session v1", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class _Revoked:
    """Session ids signed out in this process, kept until their cookies would have expired."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, sid: str, expires_at: int) -> None:
        now = int(time.time())
        with self._lock:
            self._ids = {k: v for k, v in self._ids.items() if v > now}
            self._ids[sid] = expires_at

    def __contains__(self, sid: str) -> bool:
        with self._lock:
            return sid in self._ids


_revoked = _Revoked()


def key_matches(settings: Settings, key: str) -> bool:
    """Only the admin key opens the dashboard; a user API key never does."""
    return bool(settings.admin_key) and hmac.compare_digest(settings.admin_key.encode(), key.encode())


def issue(settings: Settings, now: float | None = None) -> tuple[str, AdminSession]:
    """A new session and its signed cookie value."""
    assert settings.admin_key, "no admin key, no dashboard sessions"
    session = AdminSession(
        sid=secrets.token_urlsafe(16), csrf=secrets.token_urlsafe(32), expires_at=int(now or time.time()) + MAX_AGE_S
    )
    payload = _b64(json.dumps({"exp": session.expires_at, "sid": session.sid, "csrf": session.csrf}).encode())
    signature = _b64(hmac.new(_secret(settings.admin_key), payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}", session


def verify(settings: Settings, value: str | None, now: float | None = None) -> AdminSession | None:
    """The session a cookie value stands for, or None (absent, forged, expired, revoked, no admin key)."""
    if not value or not settings.admin_key or value.count(".") != 1:
        return None
    payload, signature = value.split(".")
    expected = _b64(hmac.new(_secret(settings.admin_key), payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return None
    try:
        data = json.loads(_unb64(payload))
        session = AdminSession(sid=str(data["sid"]), csrf=str(data["csrf"]), expires_at=int(data["exp"]))
    except (ValueError, KeyError, TypeError):
        return None
    if session.expires_at <= (now or time.time()) or session.sid in _revoked:
        return None
    return session


def from_request(request: Request, settings: Settings) -> AdminSession | None:
    """The request's valid dashboard session, if its cookie carries one."""
    return verify(settings, request.cookies.get(COOKIE))


def csrf_ok(session: AdminSession, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(session.csrf.encode(), token.encode())


def set_cookie(response: Response, request: Request, value: str) -> None:
    """`Secure` whenever the browser came over HTTPS, also through a TLS-terminating proxy."""
    https = request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "").lower() == "https"
    response.set_cookie(COOKIE, value, max_age=MAX_AGE_S, path="/", httponly=True, samesite="strict", secure=https)


def sign_out(response: Response, session: AdminSession | None) -> None:
    if session is not None:
        _revoked.add(session.sid, session.expires_at)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
