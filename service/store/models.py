"""ORM tables of the episodic store (design section 2). API schemas live in `service/protocol.py`."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from sqlalchemy import JSON, DateTime, Double, TypeDecorator, text, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Python None is SQL NULL (not JSON null), so `IS NULL` filters work.
JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timestamps are UTC and come back timezone-aware on every database (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    pass


class EpisodeStatus:
    PENDING = "pending"
    COMPLETE = "complete"
    ABORTED = "aborted"
    ERROR = "error"
    ALL = (PENDING, COMPLETE, ABORTED, ERROR)


class Episode(Base):
    """One interaction: the request's messages and the reply the client received."""

    __tablename__ = "episodes"
    __table_args__ = (
        UniqueConstraint("namespace", "idempotency_key", name="uq_episodes_namespace_idempotency_key"),
        Index("ix_episodes_namespace_created_at", "namespace", "created_at"),
        Index("ix_episodes_backlog", "namespace", "status", "consolidated_by"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    namespace: Mapped[str] = mapped_column(String(128))
    conversation_id: Mapped[str | None] = mapped_column(String(256))
    idempotency_key: Mapped[str | None] = mapped_column(String(256))
    messages: Mapped[list] = mapped_column(JSONType)
    params: Mapped[dict | None] = mapped_column(JSONType)
    response: Mapped[str | None] = mapped_column(Text)
    tool_calls: Mapped[list | None] = mapped_column(JSONType)  # the reply's function calls, arguments as objects
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(256))
    adapter_version: Mapped[int | None] = mapped_column(Integer)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), default=EpisodeStatus.PENDING)
    error: Mapped[str | None] = mapped_column(Text)
    flags: Mapped[list | None] = mapped_column(JSONType)  # e.g. ["planted_instruction"]: kept out of sleep
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consolidated_by: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("sleep_runs.id"))
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RunState:
    QUEUED = "queued"
    RUNNING = "running"
    EVALUATING = "evaluating"
    PUBLISHED = "published"
    REJECTED = "rejected"
    FAILED = "failed"
    CANCELLED = "cancelled"
    STALLED = "stalled"  # shown, never stored: running, but its lease expired (its worker went silent)
    LIVE = (QUEUED, RUNNING, EVALUATING)
    FINAL = (PUBLISHED, REJECTED, FAILED, CANCELLED)


class AdapterState:
    CANDIDATE = "candidate"  # published, not serving now (rollback target)
    ACTIVE = "active"
    RETIRED = "retired"  # learned from forgotten episodes: never served again
    REJECTED = "rejected"  # failed the eval gate


_LIVE_RUN = text("state IN ('queued', 'running', 'evaluating')")
_ACTIVE_ADAPTER = text("state = 'active'")


class SleepRun(Base):
    __tablename__ = "sleep_runs"
    __table_args__ = (
        Index("ix_sleep_runs_namespace_state", "namespace", "state"),
        # At most one live run per namespace, even when two API replicas enqueue at once.
        Index("uq_sleep_runs_live_namespace", "namespace", unique=True, postgresql_where=_LIVE_RUN, sqlite_where=_LIVE_RUN),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    namespace: Mapped[str] = mapped_column(String(128))
    trigger: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    phase: Mapped[str | None] = mapped_column(String(32))
    step: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(256))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    metrics: Mapped[dict | None] = mapped_column(JSONType)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SleepWorker(Base):
    """A worker's heartbeat: written at each poll and with each lease renewal, removed when it stops."""

    __tablename__ = "sleep_workers"

    id: Mapped[str] = mapped_column(String(256), primary_key=True)  # the worker's owner name (host:pid:tag)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)  # the run it holds now, None when idle


class Adapter(Base):
    __tablename__ = "adapters"
    __table_args__ = (
        UniqueConstraint("namespace", "version", name="uq_adapters_namespace_version"),
        Index(
            "uq_adapters_active_namespace", "namespace", unique=True,
            postgresql_where=_ACTIVE_ADAPTER, sqlite_where=_ACTIVE_ADAPTER,
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    namespace: Mapped[str] = mapped_column(String(128))
    version: Mapped[int] = mapped_column(Integer)
    parent_version: Mapped[int | None] = mapped_column(Integer)
    run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, ForeignKey("sleep_runs.id"))
    path: Mapped[str] = mapped_column(Text)
    rank: Mapped[int] = mapped_column(Integer)
    experts: Mapped[int] = mapped_column(Integer, default=1)
    metrics: Mapped[dict | None] = mapped_column(JSONType)
    state: Mapped[str] = mapped_column(String(16), default="candidate")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AdapterEpisode(Base):
    """Lineage: which episodes went into which adapter (needed to forget a user)."""

    __tablename__ = "adapter_episodes"

    adapter_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("adapters.id", ondelete="CASCADE"), primary_key=True)
    episode_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("episodes.id", ondelete="CASCADE"), primary_key=True)


class ApiKey(Base):
    """An API key of the store (`reverie keys create`): its digest, never the key (`store/api_keys.py`)."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # HMAC-SHA256 of the key, hex
    prefix: Mapped[str] = mapped_column(String(16), index=True)  # the key's first characters, shown in listings
    namespace: Mapped[str] = mapped_column(String(128))
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RateBucket(Base):
    """One API key's token bucket (REVERIE_RATE_LIMIT_PER_MINUTE), shared by every replica.

    `refilled_at` is Unix seconds rather than a timestamp: the refill is arithmetic inside one upsert,
    and numbers subtract the same way on Postgres and SQLite."""

    __tablename__ = "rate_buckets"

    caller: Mapped[str] = mapped_column(String(64), primary_key=True)  # `serving.auth.caller_id`
    tokens: Mapped[float] = mapped_column(Double)
    refilled_at: Mapped[float] = mapped_column(Double)


class DashboardSession(Base):
    """A signed-in dashboard session; signing out deletes it, so its cookie fails on every replica."""

    __tablename__ = "dashboard_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the cookie's session id, hex
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
