"""Admin read API (admin key only): episodes and the memory backlog. The dashboard builds on these."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from service.deps import AdminDep, SessionDep
from service.protocol import ErrorResponse
from service.store import episodes as store
from service.store.models import EpisodeStatus

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
