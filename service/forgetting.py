"""Forgetting: an episode, a conversation or a whole namespace leaves the store, the spool, and the
model's memory.

Through the `adapter_episodes` lineage every adapter that learned from a forgotten episode is retired,
with every adapter grown on top of it (an adapter carries its parent's experts). The namespace is
served at once by its newest adapter that never saw the forgotten episodes (or the base model); the
episodes the retired adapters had consolidated go back to the backlog, and a rebuild run is queued
so that they are learned again without what was forgotten. Retired adapter folders (weights and
kept dreams) are deleted from disk.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from datetime import timedelta
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from service.store import runs as run_store
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
from service.store.spool import Spool

log = logging.getLogger(__name__)


@dataclass
class ForgetReport:
    deleted: int = 0
    spooled_removed: int = 0
    retired_versions: list[int] = field(default_factory=list)
    serving_version: int | None = None
    rebuild_run_id: str | None = None
    retired_paths: list[str] = field(default_factory=list)


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


def forget(
    *,
    session_factory: sessionmaker[Session],
    spool: Spool | None,
    namespace: str,
    episode_ids: list[uuid.UUID] | None = None,
    conversation_id: str | None = None,
) -> ForgetReport:
    """Forget the namespace's episodes (all of them, or those ids, or that conversation)."""
    report = ForgetReport()

    def chosen(record) -> bool:
        if record.namespace != namespace:
            return False
        if episode_ids is not None:
            return record.id in set(episode_ids)
        if conversation_id is not None:
            return record.conversation_id == conversation_id
        return True

    # The spool first: a drain that already ran put its rows in the store, where they are deleted below.
    if spool is not None:
        report.spooled_removed = spool.purge(chosen)

    with session_factory() as session, session.begin():
        query = select(Episode.id, Episode.status).where(Episode.namespace == namespace)
        if episode_ids is not None:
            query = query.where(Episode.id.in_(episode_ids))
        if conversation_id is not None:
            query = query.where(Episode.conversation_id == conversation_id)
        rows = session.execute(query).all()
        ids = [row.id for row in rows]
        if not ids:
            return report
        learned_by = set(
            session.scalars(
                select(Adapter.version)
                .join(AdapterEpisode, AdapterEpisode.adapter_id == Adapter.id)
                .where(AdapterEpisode.episode_id.in_(ids), Adapter.namespace == namespace)
            )
        )
        adapters = list(session.scalars(select(Adapter).where(Adapter.namespace == namespace)))
        tainted = _descendants(adapters, learned_by) if learned_by else set()
        retired = [a for a in adapters if a.version in tainted and a.state != AdapterState.RETIRED]
        for adapter in retired:
            adapter.state = AdapterState.RETIRED
            report.retired_versions.append(adapter.version)
            report.retired_paths.append(adapter.path)
        session.flush()
        if tainted:
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
                report.serving_version = fallback.version
            # What the retired adapters had learned, minus the forgotten, goes back to the backlog.
            retired_runs = [a.run_id for a in adapters if a.version in tainted and a.run_id is not None]
            session.execute(
                update(Episode)
                .where(Episode.consolidated_by.in_(retired_runs), Episode.id.not_in(ids))
                .values(consolidated_by=None)
            )
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
        # A run in progress may be learning the forgotten episodes: cancel it (its worker is fenced off
        # at its next heartbeat) and queue a fresh one.
        interrupted = session.execute(
            update(SleepRun)
            .where(SleepRun.namespace == namespace, SleepRun.state.in_(RunState.LIVE))
            .values(state=RunState.CANCELLED, error="cancelled: episodes it was consolidating were forgotten",
                    finished_at=utcnow())
        ).rowcount
        report.deleted = len(ids)
    if report.retired_versions or interrupted:
        with session_factory() as session:
            run, _ = run_store.enqueue_run(session=session, namespace=namespace, trigger="rebuild")
            report.rebuild_run_id = str(run.id)
    log.info(
        "forgot %d episodes of %r; retired adapters %s; serving %s",
        report.deleted, namespace, report.retired_versions, report.serving_version,
    )
    return report


def remove_retired_folders(paths: list[str]) -> None:
    """Delete retired adapters from disk once no engine serves them (their weights hold the forgotten)."""
    for path in paths:
        shutil.rmtree(Path(path), ignore_errors=True)


def sweep_tombstones(*, session_factory: sessionmaker[Session], older_than: timedelta = timedelta(hours=1)) -> int:
    """Remove forgotten episodes that were still pending when forgotten, once their request has surely
    ended (a late completion finds the tombstone and writes nothing; with the row gone it would insert)."""
    with session_factory() as session, session.begin():
        return session.execute(
            delete(Episode).where(Episode.deleted_at.is_not(None), Episode.deleted_at < utcnow() - older_than)
        ).rowcount
