"""Store functions for episodes: keyword-only, one session in, plain data out."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.store.models import Episode, EpisodeStatus, utcnow


@dataclass
class EpisodeRecord:
    """An episode as the recorder sees it; JSON-serialisable so it can wait in the spool."""

    id: uuid.UUID
    namespace: str
    model: str
    messages: list[dict]
    status: str = EpisodeStatus.PENDING
    conversation_id: str | None = None
    idempotency_key: str | None = None
    params: dict | None = None
    response: str | None = None
    finish_reason: str | None = None
    adapter_version: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    completed_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["id"] = str(self.id)
        data["created_at"] = self.created_at.isoformat()
        data["completed_at"] = self.completed_at.isoformat() if self.completed_at else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EpisodeRecord:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["id"] = uuid.UUID(values["id"])
        values["created_at"] = datetime.fromisoformat(values["created_at"])
        if values.get("completed_at"):
            values["completed_at"] = datetime.fromisoformat(values["completed_at"])
        return cls(**values)

    def column_values(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_row(cls, row: Episode) -> EpisodeRecord:
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})


def _dialect_insert(session: Session):
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


_MUTABLE_COLUMNS = (
    "status",
    "response",
    "finish_reason",
    "adapter_version",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "error",
    "completed_at",
)


def upsert_episodes(*, session: Session, records: list[EpisodeRecord]) -> None:
    """Insert episodes or move existing `pending` rows to their final state; idempotent.

    A row that already left `pending` is never overwritten, so replaying the spool after the store
    came back cannot turn a `complete` episode back into `pending` or duplicate it.
    """
    if not records:
        return
    insert = _dialect_insert(session)
    statement = insert(Episode)
    statement = statement.on_conflict_do_update(
        index_elements=[Episode.id],
        set_={name: getattr(statement.excluded, name) for name in _MUTABLE_COLUMNS},
        where=Episode.status == EpisodeStatus.PENDING,
    )
    # executemany form: SQLAlchemy batches it into multi-row INSERTs with one cached compilation.
    session.execute(statement, [r.column_values() for r in records])


def get_by_idempotency_key(*, session: Session, namespace: str, key: str) -> EpisodeRecord | None:
    row = session.scalar(select(Episode).where(Episode.namespace == namespace, Episode.idempotency_key == key))
    return EpisodeRecord.from_row(row) if row else None


def reset_for_retry(*, session: Session, record: EpisodeRecord) -> None:
    """An idempotent request whose first attempt failed runs again in the same row."""
    row = session.get(Episode, record.id)
    for name in _MUTABLE_COLUMNS:
        setattr(row, name, getattr(record, name))
    row.messages = record.messages
    row.params = record.params


def list_episodes(
    *, session: Session, namespace: str | None = None, status: str | None = None, limit: int = 50
) -> list[Episode]:
    query = select(Episode).where(Episode.deleted_at.is_(None))
    if namespace:
        query = query.where(Episode.namespace == namespace)
    if status:
        query = query.where(Episode.status == status)
    return list(session.scalars(query.order_by(Episode.created_at.desc(), Episode.id).limit(limit)))


@dataclass
class NamespaceBacklog:
    namespace: str
    episodes: int
    tokens: int
    oldest_at: datetime | None


def backlog(*, session: Session) -> list[NamespaceBacklog]:
    """Per namespace: complete episodes not yet consolidated into an adapter."""
    tokens = func.coalesce(func.sum(func.coalesce(Episode.prompt_tokens, 0) + func.coalesce(Episode.completion_tokens, 0)), 0)
    query = (
        select(Episode.namespace, func.count(), tokens, func.min(Episode.created_at))
        .where(
            Episode.status == EpisodeStatus.COMPLETE,
            Episode.consolidated_by.is_(None),
            Episode.deleted_at.is_(None),
        )
        .group_by(Episode.namespace)
        .order_by(Episode.namespace)
    )
    return [NamespaceBacklog(ns, int(count), int(tok), oldest) for ns, count, tok, oldest in session.execute(query)]
