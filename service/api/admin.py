"""Admin API (the admin key, or a dashboard session): episodes, the memory backlog, runs, adapters, API keys.
The dashboard's pages build on these."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from service.api.deps import (
    AdapterSyncDep,
    AdminDep,
    EngineDep,
    LivenessDep,
    RecorderDep,
    SchedulerDep,
    SessionDep,
    SessionFactoryDep,
    WorkerWakeDep,
)
from service.api.schemas import (
    AdapterList,
    AdapterOut,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyOut,
    Backlog,
    BacklogItem,
    BaseActivated,
    Deleted,
    EpisodeList,
    EpisodeOut,
    NO_NUL,
    IsoMoment,
    RunList,
    RunOut,
    Stats,
    utc_bound,
)
from service.config import DEFAULT_NAMESPACE, NAMESPACE_PATTERN
from service.errors import NotFoundError
from service.serving.protocol import ErrorResponse
from service.sleep.forgetting import forget_and_swap
from service.sleep.rollback import activate_version
from service.store import adapters as adapter_store
from service.store import api_keys as key_store
from service.store import episodes as store
from service.store import runs as run_store
from service.store.models import EpisodeStatus
from service.store.stats import namespace_overviews

router = APIRouter(prefix="/admin/api", tags=["admin"], responses={401: {"model": ErrorResponse}})

NamespacePath = Annotated[str, Path(pattern=NAMESPACE_PATTERN)]
NamespaceQuery = Annotated[str | None, Query(pattern=NAMESPACE_PATTERN)]


@router.get("/episodes", response_model=EpisodeList)
def list_episodes(
    _admin: AdminDep,
    session: SessionDep,
    namespace: NamespaceQuery = None,
    status: Annotated[str | None, Query(pattern="^(" + "|".join(EpisodeStatus.ALL) + ")$")] = None,
    q: Annotated[str | None, Query(max_length=200, pattern=NO_NUL, description="Text in the messages or the response.")] = None,
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


@router.get("/episodes/{episode_id}", response_model=EpisodeOut, responses={404: {"model": ErrorResponse}})
def get_episode(_admin: AdminDep, session: SessionDep, episode_id: uuid.UUID) -> EpisodeOut:
    row = store.get_episode(session=session, episode_id=episode_id)
    if row is None:
        raise NotFoundError(f"No episode {episode_id}.", param="episode_id")
    return EpisodeOut.of(row)


class _Forgetting:
    """The forget routes' shared dependencies, in one parameter."""

    def __init__(
        self, sessions: SessionFactoryDep, recorder: RecorderDep, adapter_sync: AdapterSyncDep, wake: WorkerWakeDep
    ):
        self.sessions, self.recorder, self.adapter_sync, self.wake = sessions, recorder, adapter_sync, wake

    async def __call__(self, namespace: str, **which) -> Deleted:
        report = await forget_and_swap(
            session_factory=self.sessions, spool=self.recorder.spool, namespace=namespace,
            swap=self.adapter_sync.sync_once, wake_worker=self.wake, object_store=self.adapter_sync.object_store,
            **which,
        )
        return Deleted(
            deleted=report.deleted,
            spooled_removed=report.spooled_removed,
            retired_versions=report.retired_versions,
            serving_version=report.serving_version,
            rebuild_run_id=report.rebuild_run_id,
        )


ForgettingDep = Annotated[_Forgetting, Depends(_Forgetting)]


@router.delete(
    "/episodes/{episode_id}", response_model=Deleted, responses={403: {"model": ErrorResponse}, 404: {"model": ErrorResponse}}
)
async def delete_episode(_admin: AdminDep, forgetting: ForgettingDep, episode_id: uuid.UUID) -> Deleted:
    """Forget one episode: it leaves the store and the spool; adapters that learned it are retired
    and a rebuild of the namespace is queued."""
    with forgetting.sessions() as session:
        row = store.get_episode(session=session, episode_id=episode_id)
        namespace = row.namespace if row is not None else None
    if namespace is None:
        raise NotFoundError(f"No episode {episode_id}.", param="episode_id")
    return await forgetting(namespace, episode_ids=[episode_id])


@router.delete(
    "/namespaces/{namespace}/conversations/{conversation_id}",
    response_model=Deleted,
    responses={403: {"model": ErrorResponse}},
)
async def delete_conversation(
    _admin: AdminDep,
    forgetting: ForgettingDep,
    namespace: NamespacePath,
    conversation_id: Annotated[str, Path(min_length=1, max_length=256, pattern=NO_NUL)],
) -> Deleted:
    """Forget every episode of one conversation (its `X-Conversation-Id`)."""
    return await forgetting(namespace, conversation_id=conversation_id)


@router.delete("/namespaces/{namespace}/episodes", response_model=Deleted, responses={403: {"model": ErrorResponse}})
async def delete_namespace_episodes(_admin: AdminDep, forgetting: ForgettingDep, namespace: NamespacePath) -> Deleted:
    """Forget every episode of a namespace, and the memory built from them."""
    return await forgetting(namespace)


@router.get("/backlog", response_model=Backlog)
def get_backlog(_admin: AdminDep, session: SessionDep) -> Backlog:
    now = datetime.now(timezone.utc)
    items = []
    for entry in store.backlog(session=session):
        oldest = entry.oldest_at
        age = (now - oldest).total_seconds() if oldest else None
        items.append(BacklogItem(namespace=entry.namespace, episodes=entry.episodes, tokens=entry.tokens, oldest_at=oldest, oldest_age_s=age))
    return Backlog(items=items)


@router.get("/runs", response_model=RunList)
def list_runs(
    _admin: AdminDep, session: SessionDep, liveness: LivenessDep, namespace: NamespaceQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> RunList:
    return RunList(items=[RunOut.of(run, liveness) for run in run_store.list_runs(session=session, namespace=namespace, limit=limit)])


@router.get("/adapters", response_model=AdapterList)
def list_adapters(_admin: AdminDep, session: SessionDep, engine: EngineDep, namespace: NamespaceQuery = None) -> AdapterList:
    loaded = {info.name for info in engine.loaded_adapters()}
    return AdapterList(items=[AdapterOut.of(a, loaded) for a in adapter_store.list_adapters(session=session, namespace=namespace)])


@router.post("/adapters/base/activate", response_model=BaseActivated)
async def activate_base(
    _admin: AdminDep,
    sessions: SessionFactoryDep,
    adapter_sync: AdapterSyncDep,
    namespace: Annotated[str, Query(pattern=NAMESPACE_PATTERN)] = DEFAULT_NAMESPACE,
) -> BaseActivated:
    """Serve the base model, no adapter, for the namespace (a rollback past every version); every
    episode it had learned returns to the backlog."""
    activation = await activate_version(session_factory=sessions, namespace=namespace, version=None, swap=adapter_sync.sync_once)
    return BaseActivated(namespace=namespace, returned_to_backlog=activation.returned)


@router.post("/adapters/{version}/activate", response_model=AdapterOut, responses={404: {"model": ErrorResponse}})
async def activate_adapter(
    _admin: AdminDep,
    sessions: SessionFactoryDep,
    adapter_sync: AdapterSyncDep,
    engine: EngineDep,
    version: Annotated[int, Path(ge=1, le=2**31 - 1)],
    namespace: Annotated[str, Query(pattern=NAMESPACE_PATTERN)] = DEFAULT_NAMESPACE,
) -> AdapterOut:
    """Serve this version of the namespace's memory (a rollback, or back to the newest); the swap
    happens on this replica before the reply, and on the others at their next adapter sync. Episodes
    only the rolled-over versions learned return to the backlog (`returned_to_backlog`)."""
    activation = await activate_version(
        session_factory=sessions, namespace=namespace, version=version, swap=adapter_sync.sync_once
    )
    out = AdapterOut.of(activation.adapter, {info.name for info in engine.loaded_adapters()})
    return out.model_copy(update={"returned_to_backlog": activation.returned})


@router.get("/stats", response_model=Stats)
def get_stats(
    _admin: AdminDep,
    session: SessionDep,
    scheduler: SchedulerDep,
    liveness: LivenessDep,
    namespace: NamespaceQuery = None,
    days: Annotated[int, Query(ge=1, le=90)] = 14,
) -> Stats:
    """The overview: per namespace the backlog (now and over time), episodes per day, the active
    adapter and the latest run; and the next scheduled sleep."""
    now = datetime.now(timezone.utc)
    overviews = namespace_overviews(session=session, now=now, days=days, namespace=namespace)
    return Stats.of(overviews, now=now, days=days, scheduler=scheduler, liveness=liveness)


@router.get("/keys", response_model=ApiKeyList)
def list_keys(
    _admin: AdminDep, session: SessionDep, namespace: NamespaceQuery = None, include_revoked: bool = True
) -> ApiKeyList:
    """The store's API keys, newest first (REVERIE_API_KEYS are not listed: they live in the environment)."""
    rows = key_store.list_keys(session=session, namespace=namespace, include_revoked=include_revoked)
    return ApiKeyList(items=[ApiKeyOut.of(row) for row in rows])


@router.post("/keys", response_model=ApiKeyCreated, status_code=201)
def create_key(_admin: AdminDep, session: SessionDep, body: ApiKeyCreate) -> ApiKeyCreated:
    """A new API key for a namespace, working on every replica at its next request. The reply holds
    the key itself, the only time it is shown."""
    row, key = key_store.create_key(session=session, namespace=body.namespace, label=body.label)
    return ApiKeyCreated(**ApiKeyOut.of(row).model_dump(), key=key)


@router.delete("/keys/{key_id}", response_model=ApiKeyOut, responses={404: {"model": ErrorResponse}})
def revoke_key(_admin: AdminDep, session: SessionDep, key_id: uuid.UUID) -> ApiKeyOut:
    """Revoke a key: refused from its next request on, on every replica (revoking twice changes nothing)."""
    row = key_store.revoke_key(session=session, key_id=key_id)
    if row is None:
        raise NotFoundError(f"No API key {key_id}.", param="key_id")
    return ApiKeyOut.of(row)
