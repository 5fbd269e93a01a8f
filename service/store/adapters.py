"""Adapter versions, their lineage, and the one transaction that publishes a night's memory."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.store.models import (
    Adapter,
    AdapterEpisode,
    AdapterState,
    Episode,
    EpisodeStatus,
    RunState,
)
from service.store.runs import finish_run


def active_adapter(*, session: Session, namespace: str) -> Adapter | None:
    return session.scalar(select(Adapter).where(Adapter.namespace == namespace, Adapter.state == AdapterState.ACTIVE))


def active_adapters(*, session: Session) -> list[Adapter]:
    return list(session.scalars(select(Adapter).where(Adapter.state == AdapterState.ACTIVE)))


def retired_adapters(*, session: Session) -> list[Adapter]:
    return list(session.scalars(select(Adapter).where(Adapter.state == AdapterState.RETIRED)))


def list_adapters(*, session: Session, namespace: str | None = None) -> list[Adapter]:
    query = select(Adapter)
    if namespace:
        query = query.where(Adapter.namespace == namespace)
    return list(session.scalars(query.order_by(Adapter.namespace, Adapter.version.desc())))


def get_adapter(*, session: Session, namespace: str, version: int) -> Adapter | None:
    return session.scalar(select(Adapter).where(Adapter.namespace == namespace, Adapter.version == version))


def conversation_key(episode: Episode) -> str:
    """Which conversation an episode belongs to: its conversation id, or else its opening turns
    (chat clients resend the whole history each turn, so a conversation's episodes share them)."""
    if episode.conversation_id:
        return f"id:{episode.conversation_id}"
    opening = json.dumps((episode.messages or [])[:2], sort_keys=True)
    return "opening:" + hashlib.sha256(opening.encode()).hexdigest()[:16]


def consolidation_batch(
    *, session: Session, namespace: str, limit: int, include_flagged: bool = False, per_conversation: int = 0
) -> list[Episode]:
    """Tonight's material: complete, unconsolidated, undeleted episodes, oldest first; flagged ones
    (planted instructions) left out unless asked for; at most `per_conversation` from one conversation
    (0: no cap), so that no single conversation dominates a night's training."""
    query = select(Episode).where(
        Episode.namespace == namespace,
        Episode.status == EpisodeStatus.COMPLETE,
        Episode.consolidated_by.is_(None),
        Episode.deleted_at.is_(None),
    )
    if not include_flagged:
        query = query.where(Episode.flags.is_(None))
    batch: list[Episode] = []
    taken: Counter[str] = Counter()
    for episode in session.scalars(query.order_by(Episode.created_at)):
        if per_conversation:
            key = conversation_key(episode)
            if taken[key] >= per_conversation:
                continue
            taken[key] += 1
        batch.append(episode)
        if len(batch) >= limit:
            break
    return batch


def _next_version(session: Session, namespace: str) -> int:
    current = session.scalar(select(func.max(Adapter.version)).where(Adapter.namespace == namespace))
    return (current or 0) + 1


def _add_version(session: Session, *, namespace: str, state: str, **fields) -> Adapter:
    """The namespace's next version, grown on the active one; an active newcomer demotes it."""
    parent = active_adapter(session=session, namespace=namespace)
    if parent is not None and state == AdapterState.ACTIVE:
        parent.state = AdapterState.CANDIDATE
        session.flush()
    adapter = Adapter(
        id=uuid.uuid4(),
        namespace=namespace,
        version=_next_version(session, namespace),
        parent_version=parent.version if parent else None,
        state=state,
        **fields,
    )
    session.add(adapter)
    session.flush()
    return adapter


def publish(
    *,
    session: Session,
    run_id: uuid.UUID,
    epoch: int,
    namespace: str,
    path: str,
    rank: int,
    experts: int,
    metrics: dict,
    episode_ids: list[uuid.UUID],
) -> Adapter:
    """One transaction: the run is published, the adapter recorded and made active, its lineage
    written, and its episodes marked consolidated. Fenced by the run's epoch. Commits."""
    finish_run(session=session, run_id=run_id, epoch=epoch, state=RunState.PUBLISHED, metrics=metrics)
    adapter = _add_version(
        session, namespace=namespace, run_id=run_id, path=path, rank=rank, experts=experts, metrics=metrics,
        state=AdapterState.ACTIVE,
    )
    session.add_all(AdapterEpisode(adapter_id=adapter.id, episode_id=episode_id) for episode_id in episode_ids)
    session.execute(
        update(Episode)
        .where(Episode.id.in_(episode_ids), Episode.consolidated_by.is_(None))
        .values(consolidated_by=run_id)
    )
    session.commit()
    return adapter


def record_rejected(
    *, session: Session, run_id: uuid.UUID, epoch: int, namespace: str, path: str, rank: int, experts: int, metrics: dict
) -> Adapter:
    """A candidate below the gate is kept, with its metrics, as `rejected`; nothing is consolidated."""
    finish_run(session=session, run_id=run_id, epoch=epoch, state=RunState.REJECTED, metrics=metrics)
    adapter = _add_version(
        session, namespace=namespace, run_id=run_id, path=path, rank=rank, experts=experts, metrics=metrics,
        state=AdapterState.REJECTED,
    )
    session.commit()
    return adapter


def activate(*, session: Session, namespace: str, version: int | None) -> Adapter | None:
    """Rollback (or roll forward): serve `version` (None: the base model). Commits."""
    target = None
    if version is not None:
        target = get_adapter(session=session, namespace=namespace, version=version)
        if target is None:
            raise LookupError(f"namespace {namespace!r} has no adapter version {version}")
        if target.state in (AdapterState.REJECTED, AdapterState.RETIRED):
            raise ValueError(f"adapter version {version} is {target.state} and cannot be served")
    current = active_adapter(session=session, namespace=namespace)
    if current is not None and current is not target:
        current.state = AdapterState.CANDIDATE
        session.flush()
    if target is not None:
        target.state = AdapterState.ACTIVE
    session.commit()
    return target
