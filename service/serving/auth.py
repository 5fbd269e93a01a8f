"""Bearer keys: a user key decides the namespace; the admin key opens the admin API and nothing else.

User keys come from REVERIE_API_KEYS (read at start) and from the store (`reverie keys create`, the
admin API, the dashboard). A store key is looked up at every request, never cached while the store
answers, so a key made or revoked on any replica counts at the next request on every replica. While
the store does not answer, a replica goes by what it last heard about a key (`StoreKeys`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.config import DEFAULT_NAMESPACE, LOOPBACK_HOSTS, Settings
from service.errors import AuthenticationError, StoreUnavailableError
from service.serving.recording import store_is_down
from service.store import api_keys as key_store

log = logging.getLogger(__name__)


class KeyLookup(Protocol):
    """The store's keys as `namespace_for` asks about them."""

    def namespace_of(self, token: str) -> str | None: ...

    def has_keys(self) -> bool: ...


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def namespace_for(settings: Settings, authorization: str | None, store: KeyLookup | None = None) -> str:
    """The namespace a request is served in; never taken from the request body.

    A REVERIE_API_KEYS key, else a key of the store. With no key configured anywhere (no
    REVERIE_API_KEYS, no live key in the store) and on loopback only, anyone is namespace `default`:
    the embedded default. The first key made in the store ends that at the next request."""
    token = bearer_token(authorization)
    if token is not None:
        for key, namespace in settings.key_namespaces.items():
            if hmac.compare_digest(key.encode(), token.encode()):
                return namespace
        if store is not None and (namespace := store.namespace_of(token)) is not None:
            return namespace
    if settings.open_access and settings.host in LOOPBACK_HOSTS and (store is None or not store.has_keys()):
        return DEFAULT_NAMESPACE
    if token is None:
        raise AuthenticationError(
            "You didn't provide an API key. Send it as a Bearer token in the Authorization header."
        )
    raise AuthenticationError("Incorrect API key provided.")


class StoreKeys:
    """The store's API keys, asked at every request.

    Only while the store does not answer (down, or not migrated) does a replica go by what it last
    heard: a key it saw valid within `remember_s` stays valid, and whether any key exists at all keeps
    its last answer (none ever heard: none, which opens only the loopback-only embedded default). So a
    store outage does not lock tenants out (their episodes wait in the spool), and a key revoked just
    before an outage may work on a replica that had not asked about it since, until the store is back.
    After a failure the store is left alone for `retry_after_s`, so a dead database costs no request a
    connect timeout."""

    def __init__(
        self, sessions: sessionmaker[Session], *, remember_s: float = 600.0, max_remembered: int = 10_000,
        retry_after_s: float = 2.0,
    ):
        self.sessions = sessions
        self.remember_s = remember_s
        self.max_remembered = max_remembered
        self.retry_after_s = retry_after_s
        self._lock = threading.Lock()
        self._valid: dict[str, tuple[str, float]] = {}  # key digest -> (namespace, when the store said so)
        self._had_keys = False
        self._down_until = 0.0

    def _ask(self, question):
        """`question(session)` of the store, or raise `_Down` when it cannot answer."""
        if time.monotonic() < self._down_until:
            raise _Down
        try:
            with self.sessions() as session:
                return question(session)
        except SQLAlchemyError as exc:
            if not store_is_down(exc):
                raise
            self._down_until = time.monotonic() + self.retry_after_s
            log.warning("API keys: the store does not answer (%s); going by the last answers", str(exc).splitlines()[0])
            raise _Down from None

    def namespace_of(self, token: str) -> str | None:
        if not key_store.could_be_a_store_key(token):
            return None
        digest = key_store.key_digest(token)
        try:
            namespace = self._ask(lambda session: key_store.namespace_of_key(session=session, key=token))
        except _Down:
            with self._lock:
                namespace, heard_at = self._valid.get(digest, (None, 0.0))
            if namespace is not None and time.monotonic() - heard_at < self.remember_s:
                return namespace
            raise StoreUnavailableError("the store is down and this key was not seen lately") from None
        with self._lock:
            if namespace is None:
                self._valid.pop(digest, None)
            else:
                if len(self._valid) >= self.max_remembered:
                    self._valid.pop(next(iter(self._valid)))  # the oldest heard
                self._valid.pop(digest, None)
                self._valid[digest] = (namespace, time.monotonic())
        return namespace

    def has_keys(self) -> bool:
        try:
            self._had_keys = self._ask(lambda session: key_store.has_active_keys(session=session))
        except _Down:
            pass
        return self._had_keys


class _Down(Exception):
    """The store did not answer (or is being left alone after a failure)."""


def caller_id(authorization: str | None) -> str:
    """A stable, non-secret id of the API key a request came with (per-key limits)."""
    token = bearer_token(authorization)
    return hashlib.sha256(token.encode()).hexdigest()[:16] if token else "anonymous"


def require_admin(settings: Settings, authorization: str | None) -> None:
    token = bearer_token(authorization)
    if not settings.admin_key:
        raise AuthenticationError("The admin API is disabled: set REVERIE_ADMIN_KEY.")
    if token is None or not hmac.compare_digest(settings.admin_key.encode(), token.encode()):
        raise AuthenticationError("This endpoint needs the admin key.")
