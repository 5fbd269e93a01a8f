"""Store functions for episodes: keyword-only, one session in, plain data out."""

from __future__ import annotations

import re
import uuid
from bisect import bisect_right
from dataclasses import asdict, dataclass, field, fields
from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import Date, cast, func, or_, select
from sqlalchemy.orm import Session

from service.store.models import Adapter, Episode, EpisodeStatus, SleepRun, utcnow


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
    tool_calls: list[dict] | None = None  # the reply's calls: [{"id", "type", "function": {"name", "arguments"}}]
    finish_reason: str | None = None
    adapter_version: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    error: str | None = None
    flags: list[str] | None = None
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
        """Values as every store can hold them (see `storable`)."""
        return {f.name: storable(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_row(cls, row: Episode) -> EpisodeRecord:
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: Any) -> Any:
    """`value` with every NUL and lone surrogate in its strings (nested ones too) replaced by U+FFFD.

    Postgres text and JSON cannot hold NUL, and a lone surrogate cannot be encoded as UTF-8 at all; a
    model's reply or a client's field can contain either. Replacing them keeps the episode storable,
    and the same on every backend, instead of failing its whole batch.
    """
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, list):
        return [storable(item) for item in value]
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    return value


def _dialect_insert(session: Session):
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


_MUTABLE_COLUMNS = (
    "status",
    "response",
    "tool_calls",
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
    table = Episode.__table__
    statement = insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={name: getattr(statement.excluded, name) for name in _MUTABLE_COLUMNS},
        where=table.c.status == EpisodeStatus.PENDING,
    )
    # Core executemany on the table (not the ORM bulk path): SQLAlchemy's insertmanyvalues sends
    # multi-row INSERTs, one round trip per thousand rows instead of one per row.
    session.connection().execute(statement, [r.column_values() for r in records])


def probe(*, session: Session) -> None:
    """Raise unless the store answers and holds the episodes table (a recreated, unmigrated database
    answers `SELECT 1` but cannot take an episode)."""
    session.execute(select(Episode.id).limit(1))


def get_by_idempotency_key(*, session: Session, namespace: str, key: str) -> EpisodeRecord | None:
    row = session.scalar(select(Episode).where(Episode.namespace == namespace, Episode.idempotency_key == key))
    return EpisodeRecord.from_row(row) if row else None


# Whether a reply streams does not change what is asked: a stream may replay a finished answer.
_DELIVERY_PARAMS = frozenset({"stream", "stream_options"})


def same_request(stored: EpisodeRecord, new: EpisodeRecord) -> bool:
    """Whether `new` asks what `stored` asked (messages and generation parameters, as stored)."""

    def asked(record: EpisodeRecord) -> tuple:
        params = {k: v for k, v in (record.params or {}).items() if k not in _DELIVERY_PARAMS}
        return storable(record.messages), storable(params)

    return asked(stored) == asked(new)


def expire_pending(*, session: Session, before: datetime) -> int:
    """Abort episodes still `pending` since before `before`: their request died with its process (a
    crash); returns how many. Their Idempotency-Key can then be used again."""
    rows = session.scalars(
        select(Episode).where(Episode.status == EpisodeStatus.PENDING, Episode.created_at < before)
    ).all()
    for row in rows:
        row.status, row.completed_at = EpisodeStatus.ABORTED, utcnow()
        row.error = "expired: still pending after the request timeout (the serving process died)"
    return len(rows)


def reset_for_retry(*, session: Session, record: EpisodeRecord) -> None:
    """An idempotent request whose first attempt failed runs again in the same row."""
    row = session.get(Episode, record.id)
    values = record.column_values()
    for name in (*_MUTABLE_COLUMNS, "messages", "params"):
        setattr(row, name, values[name])


def list_episodes(
    *,
    session: Session,
    namespace: str | None = None,
    status: str | None = None,
    q: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Episode]:
    """Undeleted episodes, newest first. `q` matches the request messages or the response, case-
    insensitively; `since` is inclusive and `until` exclusive on `created_at`."""
    query = select(Episode).where(Episode.deleted_at.is_(None))
    if namespace:
        query = query.where(Episode.namespace == namespace)
    if status:
        query = query.where(Episode.status == status)
    if q:
        query = query.where(or_(Episode.response.icontains(q, autoescape=True), _message_text_contains(session, q)))
    if since is not None:
        query = query.where(Episode.created_at >= since)
    if until is not None:
        query = query.where(Episode.created_at < until)
    query = query.order_by(Episode.created_at.desc(), Episode.id).offset(offset).limit(limit)
    return list(session.scalars(query))


def has_episodes(*, session: Session, namespace: str) -> bool:
    """Whether the namespace holds any undeleted episode (a namespace exists through its episodes)."""
    query = select(Episode.id).where(Episode.namespace == namespace, Episode.deleted_at.is_(None)).limit(1)
    return session.scalar(query) is not None


def _message_text_contains(session: Session, q: str):
    """Some message's text contains `q` (case-insensitively): the decoded `content` of each message,
    not the JSON encoding of the list (where `\\u00fc` stands for `ü`, `\\"` for a quote, and every
    episode contains `role`)."""
    if session.get_bind().dialect.name == "postgresql":
        message = func.jsonb_array_elements(Episode.messages).table_valued("value").alias("message")
        content = message.c.value.op("->>")("content")
    else:
        message = func.json_each(Episode.messages).table_valued("value").alias("message")
        content = func.json_extract(message.c.value, "$.content")
    return select(1).select_from(message).where(content.icontains(q, autoescape=True)).exists()


def get_episode(*, session: Session, episode_id: uuid.UUID) -> Episode | None:
    """One undeleted episode."""
    row = session.get(Episode, episode_id)
    return row if row is not None and row.deleted_at is None else None


def namespaces(*, session: Session) -> list[str]:
    """Every namespace with an episode, a run or an adapter."""
    names: set[str] = set()
    for model in (Episode, SleepRun, Adapter):
        names.update(session.scalars(select(model.namespace).distinct()))
    return sorted(names)


def episodes_per_day(*, session: Session, since: datetime) -> list[tuple[str, date, int]]:
    """(namespace, UTC day, episodes recorded that day) from `since` on; days without any are absent."""
    if session.get_bind().dialect.name == "postgresql":
        day = cast(func.timezone("UTC", Episode.created_at), Date)
    else:  # SQLite stores naive UTC text
        day = func.date(Episode.created_at)
    query = (
        select(Episode.namespace, day, func.count())
        .where(Episode.created_at >= since, Episode.deleted_at.is_(None))
        .group_by(Episode.namespace, day)
        .order_by(Episode.namespace, day)
    )
    return [
        (ns, d if isinstance(d, date) else date.fromisoformat(str(d)), int(n)) for ns, d, n in session.execute(query)
    ]


def episodes_per_hour(*, session: Session, since: datetime) -> list[tuple[str, int, int]]:
    """(namespace, UTC hour 0-23, episodes recorded in it) from `since` (at most a day back) on."""
    if session.get_bind().dialect.name == "postgresql":
        hour = func.to_char(func.timezone("UTC", Episode.created_at), "HH24")
    else:  # SQLite stores naive UTC text, "YYYY-MM-DD HH:MM:SS"
        hour = func.substr(Episode.created_at, 12, 2)
    query = (
        select(Episode.namespace, hour, func.count())
        .where(Episode.created_at >= since, Episode.deleted_at.is_(None))
        .group_by(Episode.namespace, hour)
    )
    return [(ns, int(h), int(n)) for ns, h, n in session.execute(query)]


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive UTC datetimes; Postgres aware ones."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def backlog_history(
    *, session: Session, namespace: str, since: datetime, until: datetime, points: int = 48
) -> list[tuple[datetime, int]]:
    """The backlog (complete, unconsolidated, undeleted episodes) over time, at `points` evenly spaced
    moments from `since` to `until`: the first is the backlog at `since`, each later one the highest
    backlog in the interval that ends at it (so a backlog that came and went between two moments
    still shows). An episode counts from its `created_at` until its consolidating run's
    `finished_at`; deleted episodes are left out of the past too."""
    finished = SleepRun.finished_at
    rows = session.execute(
        select(Episode.created_at, finished)
        .outerjoin(SleepRun, SleepRun.id == Episode.consolidated_by)
        .where(
            Episode.namespace == namespace,
            Episode.status == EpisodeStatus.COMPLETE,
            Episode.deleted_at.is_(None),
            Episode.created_at <= until,
            or_(Episode.consolidated_by.is_(None), finished.is_(None), finished >= since),
        )
    ).all()
    since, until = as_utc(since), as_utc(until)
    created = sorted(as_utc(c) for c, _ in rows)
    left = sorted(as_utc(f) for _, f in rows if f is not None)
    count = bisect_right(created, since) - bisect_right(left, since)
    # arrivals before departures at the same instant, so a peak is never missed
    events = sorted([(t, 0, 1) for t in created if t > since] + [(t, 1, -1) for t in left if since < t <= until])
    step = (until - since) / max(points - 1, 1)
    history, i = [(since, count)], 0
    for n in range(1, points):
        moment = until if n == points - 1 else since + step * n
        peak = count
        while i < len(events) and events[i][0] <= moment:
            count += events[i][2]
            peak = max(peak, count)
            i += 1
        history.append((moment, peak))
    return history


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
