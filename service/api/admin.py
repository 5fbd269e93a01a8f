"""Admin read API (admin key only): episodes and the memory backlog. The dashboard builds on these."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from service.adapter_sync import adapter_name
from service.api.sleep import RunOut
from service.config import DEFAULT_NAMESPACE
from service.deps import AdminDep, EngineDep, SessionDep
from service.errors import ConflictError, NotFoundError
from service.protocol import ErrorResponse
from service.store import adapters as adapter_store
from service.store import episodes as store
from service.store import runs as run_store
from service.store.models import Adapter, EpisodeStatus

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


class EpisodeList(BaseModel):
    items: list[EpisodeOut]


class BacklogItem(BaseModel):
    namespace: str
    episodes: int
    tokens: int
    oldest_at: datetime | None
    oldest_age_s: float | None


class Backlog(BaseModel):
    items: list[BacklogItem]


@router.get("/episodes", response_model=EpisodeList)
def list_episodes(
    _admin: AdminDep,
    session: SessionDep,
    namespace: str | None = None,
    status: Annotated[str | None, Query(pattern="^(" + "|".join(EpisodeStatus.ALL) + ")$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> EpisodeList:
    rows = store.list_episodes(session=session, namespace=namespace, status=status, limit=limit)
    return EpisodeList(
        items=[
            EpisodeOut(
                **{name: getattr(row, name) for name in EpisodeOut.model_fields if name not in ("id", "consolidated_by")},
                id=str(row.id),
                consolidated_by=str(row.consolidated_by) if row.consolidated_by else None,
            )
            for row in rows
        ]
    )


@router.get("/backlog", response_model=Backlog)
def get_backlog(_admin: AdminDep, session: SessionDep) -> Backlog:
    now = datetime.now(timezone.utc)
    items = []
    for entry in store.backlog(session=session):
        oldest = entry.oldest_at
        if oldest is not None and oldest.tzinfo is None:  # SQLite returns naive UTC
            oldest = oldest.replace(tzinfo=timezone.utc)
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
    _admin: AdminDep, request: Request, version: int, namespace: str = DEFAULT_NAMESPACE
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
