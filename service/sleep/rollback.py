"""Rollback (or roll forward): serve another published version of a namespace's memory, or the base
model; the episodes only the rolled-over versions learned go back to the backlog."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy.orm import Session, sessionmaker

from service.errors import ConflictError, NotFoundError
from service.store import adapters as adapter_store


async def activate_version(
    *, session_factory: sessionmaker[Session], namespace: str, version: int | None, swap: Callable[[], Awaitable[None]]
) -> adapter_store.Activation:
    """Mark `version` active in the store (None: no adapter, the base model), then `swap` (this replica's
    adapter sync) so that it serves before this returns; other replicas follow at their next sync.

    Raises `NotFoundError` for an unknown version, `ConflictError` for one that may not serve (retired).
    """

    def switch() -> adapter_store.Activation:
        with session_factory() as session:
            try:
                activation = adapter_store.activate(session=session, namespace=namespace, version=version)
            except LookupError as exc:
                raise NotFoundError(str(exc), param="version") from exc
            except ValueError as exc:
                raise ConflictError(str(exc), param="version") from exc
            if activation.adapter is not None:
                session.refresh(activation.adapter)
            return activation

    activation = await asyncio.to_thread(switch)
    await swap()
    return activation
