"""Wire schemas of the admin API and `/sleep` (the OpenAI ones are in `service.serving.protocol`).

Each is built from a store row with `of(...)`; routers import them from here and never from each other.
"""

from __future__ import annotations

import re

from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, Field

from service.adapter_naming import adapter_name
from service.config import DEFAULT_NAMESPACE, NAMESPACE_PATTERN
from service.errors import InvalidRequestError
from service.store.models import Adapter, ApiKey, Episode, SleepRun
from service.store.stats import NamespaceOverview
from service.store.workers import Liveness

# --- query values ----------------------------------------------------------------------------------


def _iso_text_only(value):
    """Query strings only in ISO form: pydantic would otherwise read "0.5" as a Unix timestamp."""
    if isinstance(value, str) and "-" not in value:
        raise ValueError("expected an ISO date (YYYY-MM-DD) or datetime")
    return value


IsoMoment = Annotated[date | datetime, BeforeValidator(_iso_text_only)]


def utc_bound(text: str | None, *, end: bool = False, param: str = "since") -> datetime | None:
    """A query bound in UTC: `YYYY-MM-DD` is that day's UTC midnight (`end`: the next one); a naive
    datetime is UTC."""
    if not text:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day + timedelta(days=1) if end else day, time(), tzinfo=timezone.utc)
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    except (ValueError, OverflowError) as exc:  # OverflowError: the day after 9999-12-31, or before year 1 in UTC
        raise InvalidRequestError(
            f"'{param}' must be an ISO date or datetime from 0001-01-02 to 9999-12-30, not {text[:40]!r}.", param=param
        ) from exc


NO_NUL = r"^[^\x00]*$"  # a query text: any character but NUL, which no Postgres text holds


def check_text(text: str | None, param: str) -> str | None:
    """A filter text from a page's query string: NUL is refused (400), as the JSON API's pattern does."""
    if text and "\x00" in text:
        raise InvalidRequestError(f"'{param}' must not contain NUL characters.", param=param)
    return text


def check_namespace_filter(namespace: str | None) -> str | None:
    """A page's namespace filter: empty (all of them) or a valid namespace (400 otherwise)."""
    if namespace and not re.fullmatch(NAMESPACE_PATTERN, namespace):
        raise InvalidRequestError(f"{namespace[:80]!r} is not a valid namespace.", param="namespace")
    return namespace or None


# --- episodes and forgetting -----------------------------------------------------------------------


class EpisodeOut(BaseModel):
    id: str
    namespace: str
    conversation_id: str | None
    status: str
    messages: list[dict]
    response: str | None
    tool_calls: list[dict] | None = None  # the reply's function calls
    finish_reason: str | None
    model: str
    adapter_version: int | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float | None
    error: str | None
    created_at: datetime
    completed_at: datetime | None
    consolidated_by: str | None
    flags: list[str] | None = None

    @classmethod
    def of(cls, row: Episode) -> EpisodeOut:
        return cls(
            **{name: getattr(row, name) for name in cls.model_fields if name not in ("id", "consolidated_by")},
            id=str(row.id),
            consolidated_by=str(row.consolidated_by) if row.consolidated_by else None,
        )


class EpisodeList(BaseModel):
    items: list[EpisodeOut]


class Deleted(BaseModel):
    """What a forgetting did: episodes removed, adapters retired, what serves now, the rebuild queued."""

    deleted: int
    spooled_removed: int = 0
    retired_versions: list[int] = []
    serving_version: int | None = None
    rebuild_run_id: str | None = None


class BacklogItem(BaseModel):
    namespace: str
    episodes: int
    tokens: int
    oldest_at: datetime | None
    oldest_age_s: float | None


class Backlog(BaseModel):
    items: list[BacklogItem]


# --- sleep runs ------------------------------------------------------------------------------------


class SleepRequest(BaseModel):
    namespace: str = Field(default=DEFAULT_NAMESPACE, pattern=NAMESPACE_PATTERN, description="A namespace that has episodes.")


class RunProgress(BaseModel):
    phase: str | None
    step: int
    total: int | None = Field(description="Steps of this phase; null when the phase has no known length (setup, gate).")


class RunOut(BaseModel):
    id: str
    namespace: str
    trigger: str
    state: str = Field(description="queued, running, evaluating, stalled (lease expired: its worker went silent), "
                                    "published, rejected, failed or cancelled.")
    note: str | None = Field(default=None, description="Why a live run is not moving: stalled, or no worker alive.")
    progress: RunProgress
    metrics: dict | None
    error: str | None
    epoch: int
    lease_owner: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, run: SleepRun, liveness: Liveness | None = None) -> RunOut:
        """`liveness` (the lease and the workers' heartbeats) turns an expired lease into `stalled`."""
        return cls(
            id=str(run.id),
            namespace=run.namespace,
            trigger=run.trigger,
            state=liveness.state_of(run) if liveness else run.state,
            note=liveness.note_of(run) if liveness else None,
            progress=RunProgress(phase=run.phase, step=run.step, total=run.total or None),
            metrics=run.metrics,
            error=run.error,
            epoch=run.epoch,
            lease_owner=run.lease_owner,
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
        )


class RunList(BaseModel):
    items: list[RunOut]


class WorkerOut(BaseModel):
    id: str
    alive: bool
    started_at: datetime
    beat_at: datetime
    beat_age_s: float
    run_id: str | None

    @classmethod
    def of(cls, worker, liveness: Liveness) -> WorkerOut:
        return cls(
            id=worker.id, alive=liveness.alive(worker), started_at=worker.started_at, beat_at=worker.beat_at,
            beat_age_s=round((liveness.now - worker.beat_at).total_seconds(), 1),
            run_id=str(worker.run_id) if worker.run_id else None,
        )


# --- adapters --------------------------------------------------------------------------------------


class AdapterOut(BaseModel):
    id: str
    namespace: str
    version: int
    name: str
    parent_version: int | None
    run_id: str | None
    path: str
    rank: int
    experts: int
    metrics: dict | None
    state: str
    created_at: datetime
    loaded: bool
    returned_to_backlog: int | None = Field(
        default=None, description="Set by an activation: episodes only the rolled-over versions had learned, back in the backlog."
    )

    @classmethod
    def of(cls, adapter: Adapter, loaded: set[str]) -> AdapterOut:
        name = adapter_name(adapter.namespace, adapter.version)
        return cls(
            id=str(adapter.id), namespace=adapter.namespace, version=adapter.version, name=name,
            parent_version=adapter.parent_version, run_id=str(adapter.run_id) if adapter.run_id else None,
            path=adapter.path, rank=adapter.rank, experts=adapter.experts, metrics=adapter.metrics,
            state=adapter.state, created_at=adapter.created_at, loaded=name in loaded,
        )


class AdapterList(BaseModel):
    items: list[AdapterOut]


class BaseActivated(BaseModel):
    """A rollback to the base model: no adapter serves the namespace."""

    namespace: str
    version: None = None
    returned_to_backlog: int


# --- API keys --------------------------------------------------------------------------------------


class ApiKeyCreate(BaseModel):
    namespace: str = Field(pattern=NAMESPACE_PATTERN, description="The namespace the key's requests are served in.")
    label: str | None = Field(default=None, max_length=200, pattern=NO_NUL, description="What the key is for.")


class ApiKeyOut(BaseModel):
    """A key of the store as listings show it: never the key, only its first characters."""

    id: str
    prefix: str
    namespace: str
    label: str | None
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: ApiKey) -> ApiKeyOut:
        return cls(id=str(row.id), prefix=row.prefix, namespace=row.namespace, label=row.label,
                   created_at=row.created_at, revoked_at=row.revoked_at)


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The key itself, shown this once: the store keeps only its hash.")


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]


# --- the overview ----------------------------------------------------------------------------------


class DayCount(BaseModel):
    day: date
    episodes: int


class BacklogPoint(BaseModel):
    at: datetime
    episodes: int


class ActiveAdapter(BaseModel):
    version: int
    name: str
    created_at: datetime


class NamespaceStats(BaseModel):
    namespace: str
    backlog_episodes: int
    backlog_tokens: int
    oldest_at: datetime | None
    oldest_age_s: float | None
    active_adapter: ActiveAdapter | None
    live_run: RunOut | None
    last_run: RunOut | None
    episodes_per_day: list[DayCount]
    backlog_history: list[BacklogPoint]

    @classmethod
    def of(cls, overview: NamespaceOverview, now: datetime, liveness: Liveness | None = None) -> NamespaceStats:
        active, oldest = overview.active_adapter, overview.oldest_at
        return cls(
            namespace=overview.namespace,
            backlog_episodes=overview.backlog_episodes,
            backlog_tokens=overview.backlog_tokens,
            oldest_at=oldest,
            oldest_age_s=(now - oldest).total_seconds() if oldest else None,
            active_adapter=ActiveAdapter(
                version=active.version, name=adapter_name(overview.namespace, active.version), created_at=active.created_at
            ) if active else None,
            live_run=RunOut.of(overview.live_run, liveness) if overview.live_run else None,
            last_run=RunOut.of(overview.last_run, liveness) if overview.last_run else None,
            episodes_per_day=[DayCount(day=day, episodes=n) for day, n in overview.episodes_per_day],
            backlog_history=[BacklogPoint(at=at, episodes=n) for at, n in overview.backlog_history],
        )


class Stats(BaseModel):
    now: datetime
    next_sleep_at: datetime | None
    scheduler: bool
    days: int
    namespaces: list[NamespaceStats]
    workers: list[WorkerOut] = []

    @classmethod
    def of(
        cls, overviews: list[NamespaceOverview], *, now: datetime, days: int, scheduler, liveness: Liveness | None = None
    ) -> Stats:
        """`scheduler`: this process's night scheduler, None when it runs none (no next sleep known)."""
        return cls(
            now=now,
            next_sleep_at=scheduler.next_fire_time() if scheduler is not None else None,
            scheduler=scheduler is not None,
            days=days,
            namespaces=[NamespaceStats.of(overview, now, liveness) for overview in overviews],
            workers=[WorkerOut.of(worker, liveness) for worker in liveness.workers] if liveness else [],
        )
