"""Forgetting in the store: episodes leave the tables, the adapters that learned them are retired.

Through the `adapter_episodes` lineage every adapter that learned from a forgotten episode is retired,
with every adapter grown on top of it (an adapter carries its parent's experts). The namespace is
served at once by its newest adapter that never saw the forgotten episodes (or the base model), and
the episodes the retired adapters had consolidated go back to the backlog.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from service.store.models import (
    Adapter,
    AdapterEpisode,
    AdapterState,
    Episode,
    EpisodeStatus,
    RunState,
    SleepRun,
    utcnow,
)


@dataclass
class Erasure:
    """What one forgetting changed in the store."""

    deleted: int = 0
    retired_versions: list[int] = field(default_factory=list)
    retired_paths: list[str] = field(default_factory=list)
    serving_version: int | None = None
    interrupted_runs: int = 0


def _descendants(adapters: list[Adapter], roots: set[int]) -> set[int]:
    """Versions grown (through parent links) on top of any version in `roots`, roots included."""
    tainted = set(roots)
    changed = True
    while changed:
        changed = False
        for adapter in adapters:
            if adapter.version not in tainted and adapter.parent_version in tainted:
                tainted.add(adapter.version)
                changed = True
    return tainted


def _retire_learners(*, session: Session, namespace: str, ids: list[uuid.UUID], erasure: Erasure) -> None:
    """Retire every adapter that learned any of `ids` (and its descendants); serve the newest clean one;
    send what the retired adapters had learned, minus `ids`, back to the backlog."""
    learned_by = set(
        session.scalars(
            select(Adapter.version)
            .join(AdapterEpisode, AdapterEpisode.adapter_id == Adapter.id)
            .where(AdapterEpisode.episode_id.in_(ids), Adapter.namespace == namespace)
        )
    )
    adapters = list(session.scalars(select(Adapter).where(Adapter.namespace == namespace)))
    tainted = _descendants(adapters, learned_by) if learned_by else set()
    for adapter in adapters:
        if adapter.version in tainted and adapter.state != AdapterState.RETIRED:
            adapter.state = AdapterState.RETIRED
            erasure.retired_versions.append(adapter.version)
            erasure.retired_paths.append(adapter.path)
    session.flush()
    if not tainted:
        return
    fallback = max(
        (a for a in adapters if a.version not in tainted and a.state in (AdapterState.ACTIVE, AdapterState.CANDIDATE)),
        key=lambda a: a.version,
        default=None,
    )
    for adapter in adapters:
        if adapter.state == AdapterState.ACTIVE and adapter is not fallback:
            adapter.state = AdapterState.CANDIDATE
    session.flush()
    if fallback is not None:
        fallback.state = AdapterState.ACTIVE
        erasure.serving_version = fallback.version
    retired_runs = [a.run_id for a in adapters if a.version in tainted and a.run_id is not None]
    session.execute(
        update(Episode)
        .where(Episode.consolidated_by.in_(retired_runs), Episode.id.not_in(ids))
        .values(consolidated_by=None)
    )


def erase_episodes(
    *,
    session: Session,
    namespace: str,
    episode_ids: list[uuid.UUID] | None = None,
    conversation_id: str | None = None,
) -> Erasure:
    """Remove the namespace's episodes (all, those ids, or that conversation) and retire what learned
    them, in the caller's transaction. A live run of the namespace is cancelled (its worker is fenced
    off at its next heartbeat): it may be learning the forgotten episodes."""
    erasure = Erasure()
    query = select(Episode.id, Episode.status).where(Episode.namespace == namespace)
    if episode_ids is not None:
        query = query.where(Episode.id.in_(episode_ids))
    if conversation_id is not None:
        query = query.where(Episode.conversation_id == conversation_id)
    rows = session.execute(query).all()
    ids = [row.id for row in rows]
    if not ids:
        return erasure
    _retire_learners(session=session, namespace=namespace, ids=ids, erasure=erasure)
    # Pending episodes are still being answered: their late completion must not write the content
    # back, so they stay as empty aborted tombstones until the sweep removes them.
    pending = [row.id for row in rows if row.status == EpisodeStatus.PENDING]
    if pending:
        session.execute(
            update(Episode)
            .where(Episode.id.in_(pending))
            .values(status=EpisodeStatus.ABORTED, messages=[], response=None, params=None, conversation_id=None,
                    error=None, deleted_at=utcnow())
        )
    finished = [i for i in ids if i not in set(pending)]
    session.execute(delete(AdapterEpisode).where(AdapterEpisode.episode_id.in_(ids)))
    if finished:
        session.execute(delete(Episode).where(Episode.id.in_(finished)))
    erasure.interrupted_runs = session.execute(
        update(SleepRun)
        .where(SleepRun.namespace == namespace, SleepRun.state.in_(RunState.LIVE))
        .values(state=RunState.CANCELLED, error="cancelled: episodes it was consolidating were forgotten",
                finished_at=utcnow())
    ).rowcount
    erasure.deleted = len(ids)
    return erasure


def sweep_tombstones(*, session: Session, older_than: timedelta = timedelta(hours=1)) -> int:
    """Remove forgotten episodes that were still pending when forgotten, once their request has surely
    ended (a late completion finds the tombstone and writes nothing; with the row gone it would insert)."""
    return session.execute(
        delete(Episode).where(Episode.deleted_at.is_not(None), Episode.deleted_at < utcnow() - older_than)
    ).rowcount
