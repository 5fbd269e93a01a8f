"""Forgetting: an episode, a conversation or a whole namespace leaves the store, the spool, and the
model's memory.

The store retires every adapter that learned a forgotten episode (and those grown on it) and serves
the newest clean one; the episodes the retired adapters had consolidated go back to the backlog, and
a rebuild run is queued so that they are learned again without what was forgotten. Retired adapter
folders (weights and kept dreams) are deleted from disk once no engine serves them.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from service.object_store import AdapterObjectStore
from service.sleep.adapter_folders import remove_retired_folders
from service.store import runs as run_store
from service.store.forgetting import erase_episodes
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
        erasure = erase_episodes(
            session=session, namespace=namespace, episode_ids=episode_ids, conversation_id=conversation_id
        )
    report.deleted = erasure.deleted
    report.retired_versions = erasure.retired_versions
    report.retired_paths = erasure.retired_paths
    report.serving_version = erasure.serving_version
    if erasure.retired_versions or erasure.interrupted_runs:
        with session_factory() as session:
            run, _ = run_store.enqueue_run(session=session, namespace=namespace, trigger="rebuild")
            report.rebuild_run_id = str(run.id)
    if erasure.deleted:
        log.info(
            "forgot %d episodes of %r; retired adapters %s; serving %s",
            report.deleted, namespace, report.retired_versions, report.serving_version,
        )
    return report


async def forget_and_swap(
    *,
    session_factory: sessionmaker[Session],
    spool: Spool | None,
    namespace: str,
    swap: Callable[[], Awaitable[None]],
    wake_worker: Callable[[], None] | None,
    episode_ids: list[uuid.UUID] | None = None,
    conversation_id: str | None = None,
    object_store: AdapterObjectStore | None = None,
) -> ForgetReport:
    """`forget`, then serve the clean adapter (or the base model) on this replica before deleting the
    retired folders (and their objects in `object_store`), and wake the worker for the rebuild."""
    report = await asyncio.to_thread(
        forget, session_factory=session_factory, spool=spool, namespace=namespace,
        episode_ids=episode_ids, conversation_id=conversation_id,
    )
    if report.retired_versions:
        await swap()
        await asyncio.to_thread(remove_retired_folders, report.retired_paths, object_store)
    if report.rebuild_run_id and wake_worker is not None:
        wake_worker()
    return report
