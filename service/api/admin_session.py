"""Dashboard sign-in: a signed, expiring session cookie opened with the admin key, and its CSRF token.

The cookie carries `{"exp", "sid", "csrf"}` signed with HMAC-SHA256 under a secret derived from the
admin key, so a forged or altered cookie is refused without a query, and every session dies when the
admin key changes. A signed cookie is honoured only while its session is in the store
(`store/dashboard_sessions.py`, one indexed read per dashboard request): signing out deletes it, and
the cookie fails at its next request on every replica. Pages send the CSRF token back in the
`X-CSRF-Token` header (or a `csrf_token` form field); the cookie is `SameSite=Strict` and `HttpOnly`,
so another site can neither ride it nor read the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from fastapi import Request, Response
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.store import dashboard_sessions as session_store

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


def key_matches(settings: Settings, key: str) -> bool:
    """Only the admin key opens the dashboard; a user API key never does."""
    return bool(settings.admin_key) and hmac.compare_digest(settings.admin_key.encode(), key.encode())


def _digest(sid: str) -> str:
    """The stored form of a session id: a leaked table names no cookie."""
    return hashlib.sha256(sid.encode()).hexdigest()


def issue(settings: Settings, sessions: sessionmaker[Session], now: float | None = None) -> tuple[str, AdminSession]:
    """A new session, recorded in the store, and its signed cookie value."""
    assert settings.admin_key, "no admin key, no dashboard sessions"
    session = AdminSession(
        sid=secrets.token_urlsafe(16), csrf=secrets.token_urlsafe(32), expires_at=int(now or time.time()) + MAX_AGE_S
    )
    with sessions() as db:
        session_store.open_session(
            session=db, session_digest=_digest(session.sid),
            expires_at=datetime.fromtimestamp(session.expires_at, timezone.utc),
        )
    payload = _b64(json.dumps({"exp": session.expires_at, "sid": session.sid, "csrf": session.csrf}).encode())
    signature = _b64(hmac.new(_secret(settings.admin_key), payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{signature}", session


def verify(
    settings: Settings, sessions: sessionmaker[Session], value: str | None, now: float | None = None
) -> AdminSession | None:
    """The session a cookie value stands for, or None (absent, forged, expired, signed out, no admin key)."""
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
    if session.expires_at <= (now or time.time()):
        return None
    with sessions() as db:
        return session if session_store.session_is_open(session=db, session_digest=_digest(session.sid)) else None


def from_request(request: Request, settings: Settings, sessions: sessionmaker[Session]) -> AdminSession | None:
    """The request's valid dashboard session, if its cookie carries one."""
    return verify(settings, sessions, request.cookies.get(COOKIE))


def csrf_ok(session: AdminSession, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(session.csrf.encode(), token.encode())


def set_cookie(response: Response, request: Request, value: str) -> None:
    """`Secure` whenever the browser came over HTTPS, also through a TLS-terminating proxy."""
    https = request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "").lower() == "https"
    response.set_cookie(COOKIE, value, max_age=MAX_AGE_S, path="/", httponly=True, samesite="strict", secure=https)


def sign_out(response: Response, session: AdminSession | None, sessions: sessionmaker[Session]) -> None:
    """End the session in the store (every replica refuses its cookie from now on) and drop the cookie."""
    if session is not None:
        with sessions() as db:
            session_store.close_session(session=db, session_digest=_digest(session.sid))
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
