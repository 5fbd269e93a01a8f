"""Admin API (the admin key, or a dashboard session): episodes, the memory backlog, runs, adapters.
The dashboard's pages build on these."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import BaseModel, BeforeValidator

from service.adapter_sync import adapter_name
from service.api.sleep import RunOut
from service.config import DEFAULT_NAMESPACE
from service.deps import AdminDep, EngineDep, SessionDep
from service.errors import ConflictError, InvalidRequestError, NotFoundError
from service.forgetting import forget, remove_retired_folders
from service.protocol import ErrorResponse
from service.store import adapters as adapter_store
from service.store import episodes as store
from service.store import runs as run_store
from service.store.models import Adapter, Episode, EpisodeStatus

router = APIRouter(prefix="/admin/api", tags=["admin"], responses={401: {"model": ErrorResponse}})


class EpisodeOut(BaseModel):
    id: str
    namespace: str
    conversation_id: str | None
    status: str
    messages: list[dict]
    response: str | None
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


async def _forget(request: Request, namespace: str, **which) -> Deleted:
    state = request.app.state
    report = await asyncio.to_thread(
        forget, session_factory=state.session_factory, spool=state.recorder.spool, namespace=namespace, **which
    )
    if report.retired_versions:
        await state.adapter_sync.sync_once()  # the clean adapter (or the base model) serves from now on
        remove_retired_folders(report.retired_paths)
    wake = getattr(state, "wake_worker", None)
    if report.rebuild_run_id and wake is not None:
        wake()
    return Deleted(
        deleted=report.deleted,
        spooled_removed=report.spooled_removed,
        retired_versions=report.retired_versions,
        serving_version=report.serving_version,
        rebuild_run_id=report.rebuild_run_id,
    )


class BacklogItem(BaseModel):
    namespace: str
    episodes: int
    tokens: int
    oldest_at: datetime | None
    oldest_age_s: float | None


class Backlog(BaseModel):
    items: list[BacklogItem]


def _iso_text_only(value):
    """Query strings only in ISO form: pydantic would otherwise read "0.5" as a Unix timestamp."""
    if isinstance(value, str) and "-" not in value:
        raise ValueError("expected an ISO date (YYYY-MM-DD) or datetime")
    return value


IsoMoment = Annotated[date | datetime, BeforeValidator(_iso_text_only)]


@router.get("/episodes", response_model=EpisodeList)
def list_episodes(
    _admin: AdminDep,
    session: SessionDep,
    namespace: str | None = None,
    status: Annotated[str | None, Query(pattern="^(" + "|".join(EpisodeStatus.ALL) + ")$")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Text in the messages or the response.")] = None,
    since: Annotated[
        IsoMoment | None, Query(description="Recorded at or after: ISO date (UTC midnight) or datetime.")
    ] = None,
    until: Annotated[
        IsoMoment | None, Query(description="Recorded before: ISO datetime, or a date (the end of that UTC day).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> EpisodeList:
    """Undeleted episodes, newest first, filtered by namespace, status, text and date."""
    rows = store.list_episodes(
        session=session, namespace=namespace, status=status, q=q or None,
        since=utc_bound(since and since.isoformat()), until=utc_bound(until and until.isoformat(), end=True, param="until"),
        limit=limit, offset=offset,
    )
    return EpisodeList(items=[EpisodeOut.of(row) for row in rows])


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
    except ValueError as exc:
        raise InvalidRequestError(f"'{param}' must be an ISO date or datetime, not {text!r}.", param=param) from exc
    return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)


@router.get("/episodes/{episode_id}", response_model=EpisodeOut, responses={404: {"model": ErrorResponse}})
def get_episode(_admin: AdminDep, session: SessionDep, episode_id: uuid.UUID) -> EpisodeOut:
    row = store.get_episode(session=session, episode_id=episode_id)
    if row is None:
        raise NotFoundError(f"No episode {episode_id}.", param="episode_id")
    return EpisodeOut.of(row)


@router.delete(
    "/episodes/{episode_id}", response_model=Deleted, responses={403: {"model": ErrorResponse}, 404: {"model": ErrorResponse}}
)
async def delete_episode(_admin: AdminDep, request: Request, episode_id: uuid.UUID) -> Deleted:
    """Forget one episode: it leaves the store and the spool; adapters that learned it are retired
    and a rebuild of the namespace is queued."""
    with request.app.state.session_factory() as session:
        row = store.get_episode(session=session, episode_id=episode_id)
        namespace = row.namespace if row is not None else None
    if namespace is None:
        raise NotFoundError(f"No episode {episode_id}.", param="episode_id")
    return await _forget(request, namespace, episode_ids=[episode_id])


@router.delete(
    "/namespaces/{namespace}/conversations/{conversation_id}",
    response_model=Deleted,
    responses={403: {"model": ErrorResponse}},
)
async def delete_conversation(
    _admin: AdminDep,
    request: Request,
    namespace: Annotated[str, Path(min_length=1, max_length=128)],
    conversation_id: Annotated[str, Path(min_length=1, max_length=256)],
) -> Deleted:
    """Forget every episode of one conversation (its `X-Conversation-Id`)."""
    return await _forget(request, namespace, conversation_id=conversation_id)


@router.delete("/namespaces/{namespace}/episodes", response_model=Deleted, responses={403: {"model": ErrorResponse}})
async def delete_namespace_episodes(
    _admin: AdminDep, request: Request, namespace: Annotated[str, Path(min_length=1, max_length=128)]
) -> Deleted:
    """Forget every episode of a namespace, and the memory built from them."""
    return await _forget(request, namespace)


@router.get("/backlog", response_model=Backlog)
def get_backlog(_admin: AdminDep, session: SessionDep) -> Backlog:
    now = datetime.now(timezone.utc)
    items = []
    for entry in store.backlog(session=session):
        oldest = entry.oldest_at
        age = (now - oldest).total_seconds() if oldest else None
        items.append(BacklogItem(namespace=entry.namespace, episodes=entry.episodes, tokens=entry.tokens, oldest_at=oldest, oldest_age_s=age))
    return Backlog(items=items)


class RunList(BaseModel):
    items: list[RunOut]


@router.get("/runs", response_model=RunList)
def list_runs(
    _admin: AdminDep, session: SessionDep, namespace: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> RunList:
    return RunList(items=[RunOut.of(run) for run in run_store.list_runs(session=session, namespace=namespace, limit=limit)])


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


@router.get("/adapters", response_model=AdapterList)
def list_adapters(_admin: AdminDep, session: SessionDep, engine: EngineDep, namespace: str | None = None) -> AdapterList:
    loaded = {info.name for info in engine.loaded_adapters()}
    return AdapterList(items=[AdapterOut.of(a, loaded) for a in adapter_store.list_adapters(session=session, namespace=namespace)])


@router.post("/adapters/{version}/activate", response_model=AdapterOut, responses={404: {"model": ErrorResponse}})
async def activate_adapter(
    _admin: AdminDep,
    request: Request,
    version: Annotated[int, Path(ge=1, le=2**31 - 1)],
    namespace: Annotated[str, Query(min_length=1, max_length=128)] = DEFAULT_NAMESPACE,
) -> AdapterOut:
    """Serve this version of the namespace's memory (a rollback, or back to the newest); the swap
    happens on this replica before the reply, and on the others at their next adapter sync."""
    state = request.app.state

    def switch():
        with state.session_factory() as session:
            try:
                adapter = adapter_store.activate(session=session, namespace=namespace, version=version)
            except LookupError as exc:
                raise NotFoundError(str(exc), param="version") from exc
            except ValueError as exc:
                raise ConflictError(str(exc), param="version") from exc
            session.refresh(adapter)
            return adapter

    adapter = await asyncio.to_thread(switch)
    await state.adapter_sync.sync_once()
    return AdapterOut.of(adapter, {info.name for info in state.engine.loaded_adapters()})


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


class Stats(BaseModel):
    now: datetime
    next_sleep_at: datetime | None
    scheduler: bool
    days: int
    namespaces: list[NamespaceStats]


def collect_stats(*, session, scheduler, days: int = 14, namespace: str | None = None) -> Stats:
    """Per namespace: the backlog now and over `days` days, episodes per day, the active adapter and
    the runs; and when the scheduler fires next (None without a scheduler in this process)."""
    now = datetime.now(timezone.utc)
    first_day = now.date() - timedelta(days=days - 1)
    since = datetime.combine(first_day, time(), tzinfo=timezone.utc)
    backlogs = {entry.namespace: entry for entry in store.backlog(session=session)}
    per_day: dict[str, dict[date, int]] = {}
    for ns, day, count in store.episodes_per_day(session=session, since=since):
        per_day.setdefault(ns, {})[day] = count
    names = [namespace] if namespace else store.namespaces(session=session)
    items = []
    for ns in names:
        entry = backlogs.get(ns)
        oldest = store.as_utc(entry.oldest_at) if entry and entry.oldest_at else None
        active = adapter_store.active_adapter(session=session, namespace=ns)
        live = run_store.live_run(session=session, namespace=ns)
        last = run_store.list_runs(session=session, namespace=ns, limit=1)
        counts = per_day.get(ns, {})
        items.append(
            NamespaceStats(
                namespace=ns,
                backlog_episodes=entry.episodes if entry else 0,
                backlog_tokens=entry.tokens if entry else 0,
                oldest_at=oldest,
                oldest_age_s=(now - oldest).total_seconds() if oldest else None,
                active_adapter=ActiveAdapter(
                    version=active.version, name=adapter_name(ns, active.version), created_at=active.created_at
                ) if active else None,
                live_run=RunOut.of(live) if live else None,
                last_run=RunOut.of(last[0]) if last else None,
                episodes_per_day=[
                    DayCount(day=first_day + timedelta(days=i), episodes=counts.get(first_day + timedelta(days=i), 0))
                    for i in range(days)
                ],
                backlog_history=[
                    BacklogPoint(at=at, episodes=n)
                    for at, n in store.backlog_history(session=session, namespace=ns, since=since, until=now)
                ],
            )
        )
    next_at = scheduler.next_fire_time() if scheduler is not None else None
    return Stats(now=now, next_sleep_at=next_at, scheduler=scheduler is not None, days=days, namespaces=items)


@router.get("/stats", response_model=Stats)
def get_stats(
    _admin: AdminDep,
    session: SessionDep,
    request: Request,
    namespace: str | None = None,
    days: Annotated[int, Query(ge=1, le=90)] = 14,
) -> Stats:
    """The overview: per namespace the backlog (now and over time), episodes per day, the active
    adapter and the latest run; and the next scheduled sleep."""
    return collect_stats(
        session=session, scheduler=getattr(request.app.state, "scheduler", None), days=days, namespace=namespace
    )
