"""Rollback (or roll forward): serve another published version of a namespace's memory."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy.orm import Session, sessionmaker

from service.errors import ConflictError, NotFoundError
from service.store import adapters as adapter_store
from service.store.models import Adapter


async def activate_version(
    *, session_factory: sessionmaker[Session], namespace: str, version: int, swap: Callable[[], Awaitable[None]]
) -> Adapter:
    """Mark `version` active in the store, then `swap` (this replica's adapter sync) so that it serves
    before this returns; other replicas follow at their next sync.

    Raises `NotFoundError` for an unknown version, `ConflictError` for one that may not serve (retired).
    """

    def switch() -> Adapter:
        with session_factory() as session:
            try:
                adapter = adapter_store.activate(session=session, namespace=namespace, version=version)
            except LookupError as exc:
                raise NotFoundError(str(exc), param="version") from exc
            except ValueError as exc:
                raise ConflictError(str(exc), param="version") from exc
            session.refresh(adapter)
            return adapter

    adapter = await asyncio.to_thread(switch)
    await swap()
    return adapter
