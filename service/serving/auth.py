"""Bearer keys: a user key decides the namespace; the admin key opens the admin API and nothing else."""

from __future__ import annotations

import hashlib
import hmac

from service.config import DEFAULT_NAMESPACE, Settings
from service.errors import AuthenticationError


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def namespace_for(settings: Settings, authorization: str | None) -> str:
    """The namespace a request is served in; never taken from the request body."""
    if settings.open_access:
        return DEFAULT_NAMESPACE
    token = bearer_token(authorization)
    if token is None:
        raise AuthenticationError(
            "You didn't provide an API key. Send it as a Bearer token in the Authorization header."
        )
    for key, namespace in settings.key_namespaces.items():
        if hmac.compare_digest(key.encode(), token.encode()):
            return namespace
    raise AuthenticationError("Incorrect API key provided.")


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
