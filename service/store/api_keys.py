"""API keys kept in the store: made, listed, looked up and revoked without restarting any replica.

A key is `rk_` and 43 URL-safe characters (32 random bytes, 256 bits). The store keeps its HMAC-SHA256
under a fixed, public label (`key_digest`), its first characters for listings (`prefix`), its namespace,
an optional label and when it was made and revoked; never the key itself, which is shown once.

Why a fast keyed hash and not argon2 or bcrypt: a slow hash protects guessable secrets (passwords)
from a stolen table. Nothing guesses 256 random bits, so a slow hash would add no protection and cost
tens of milliseconds of CPU on every request of every replica (a lever for whoever floods the API with
wrong keys). Why no secret pepper: it would add nothing to 256-bit keys either, and it would be one more
secret that every replica and the CLI must share, whose loss or rotation revokes every key. The fixed
label only keeps these digests apart from any other SHA-256 of the same text.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from service.store.models import ApiKey, utcnow

KEY_PREFIX = "rk_"
KEY_CHARS = len(KEY_PREFIX) + 43  # token_urlsafe(32): 32 bytes are 43 base64 characters
SHOWN_CHARS = len(KEY_PREFIX) + 8  # `rk_AbCd1234`: enough to tell keys apart in a listing, useless to guess with
_DIGEST_LABEL = b"reverie api key v1"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_digest(key: str) -> str:
    """The stored form of a key: HMAC-SHA256 under a fixed label, hex (see the module docstring)."""
    return hmac.new(_DIGEST_LABEL, key.encode(), hashlib.sha256).hexdigest()


def could_be_a_store_key(token: str) -> bool:
    """Only tokens shaped like `new_key()`'s are looked up: other text never costs a query."""
    return token.startswith(KEY_PREFIX) and len(token) == KEY_CHARS


def create_key(*, session: Session, namespace: str, label: str | None = None) -> tuple[ApiKey, str]:
    """A new key for `namespace`: (its row, the key). The key is not kept anywhere. Commits."""
    key = new_key()
    row = ApiKey(id=uuid.uuid4(), key_hash=key_digest(key), prefix=key[:SHOWN_CHARS], namespace=namespace,
                 label=label or None, created_at=utcnow())
    session.add(row)
    session.commit()
    return row, key


def list_keys(*, session: Session, namespace: str | None = None, include_revoked: bool = True) -> list[ApiKey]:
    """Keys, newest first."""
    query = select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id)
    if namespace is not None:
        query = query.where(ApiKey.namespace == namespace)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list(session.scalars(query))


def namespace_of_key(*, session: Session, key: str) -> str | None:
    """The namespace of `key` if it is a key of the store that is not revoked, else None."""
    return session.scalar(
        select(ApiKey.namespace).where(ApiKey.key_hash == key_digest(key), ApiKey.revoked_at.is_(None))
    )


def has_active_keys(*, session: Session) -> bool:
    return bool(session.scalar(select(exists().where(ApiKey.revoked_at.is_(None)))))


def find_keys(*, session: Session, reference: str) -> list[ApiKey]:
    """The keys `reference` names: an id, a whole key, or the prefix a listing shows (or its start)."""
    try:
        return [row] if (row := session.get(ApiKey, uuid.UUID(reference))) else []
    except ValueError:
        pass
    if len(reference) > SHOWN_CHARS:
        return list(session.scalars(select(ApiKey).where(ApiKey.key_hash == key_digest(reference))))
    query = select(ApiKey).where(ApiKey.prefix.startswith(reference, autoescape=True)).order_by(ApiKey.created_at)
    return list(session.scalars(query))


def revoke_key(*, session: Session, key_id: uuid.UUID) -> ApiKey | None:
    """Revoke a key (the row stays, for the listing); None if there is no such key. Revoking twice keeps
    the first time. Commits."""
    session.execute(update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=utcnow()))
    session.commit()
    return session.get(ApiKey, key_id, populate_existing=True)
