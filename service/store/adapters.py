"""Adapter versions, their lineage, and the one transaction that publishes a night's memory."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import func, or_, select, update
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


@dataclass
class Activation:
    """What a rollback (or roll forward) did: the adapter now served (None: the base model), the episodes
    that only the rolled-over versions had learned (back in the backlog), and those the served lineage
    had learned that are marked consolidated again (a roll forward)."""

    adapter: Adapter | None
    returned: int = 0
    recovered: int = 0


def activate(*, session: Session, namespace: str, version: int | None) -> Activation:
    """Rollback (or roll forward): serve `version` (None: the base model). Commits.

    What counts as learned follows what is served: the episodes learned only by versions outside the
    served version's lineage (itself and its parents) return to the backlog, so the next night learns
    them again on top of it; those its lineage learned are marked consolidated again. Lineage rows are
    kept (forgetting still finds every adapter that ever learned an episode).

    Raises `LookupError` for an unknown version, `ValueError` for one that may not serve."""
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
    activation = Activation(adapter=target)
    _follow_lineage(session, namespace, target, activation)
    session.commit()
    return activation


def _follow_lineage(session: Session, namespace: str, target: Adapter | None, activation: Activation) -> None:
    adapters = {a.version: a for a in session.scalars(select(Adapter).where(Adapter.namespace == namespace))}
    chain: list[Adapter] = []  # the served version and its parents, newest first
    version = target.version if target is not None else None
    while version in adapters and adapters[version] not in chain:
        chain.append(adapters[version])
        version = adapters[version].parent_version
    chain_runs = [a.run_id for a in chain if a.run_id is not None]
    learned = select(AdapterEpisode.episode_id).where(AdapterEpisode.adapter_id.in_([a.id for a in chain]))
    others = [a.run_id for a in adapters.values() if a.run_id is not None and a.run_id not in chain_runs]
    if others:
        activation.returned = session.execute(
            update(Episode)
            .where(Episode.consolidated_by.in_(others), Episode.id.not_in(learned))
            .values(consolidated_by=None)
            .execution_options(synchronize_session=False)
        ).rowcount
    for adapter in reversed(chain):  # oldest first: an episode counts as learned by the first that learned it
        if adapter.run_id is None:
            continue
        activation.recovered += session.execute(
            update(Episode)
            .where(
                Episode.id.in_(select(AdapterEpisode.episode_id).where(AdapterEpisode.adapter_id == adapter.id)),
                Episode.deleted_at.is_(None),
                or_(Episode.consolidated_by.is_(None), Episode.consolidated_by.not_in(chain_runs)),
            )
            .values(consolidated_by=adapter.run_id)
            .execution_options(synchronize_session=False)
        ).rowcount
