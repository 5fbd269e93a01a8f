"""Keeps the engine serving what the store says is active: the hot-swap side of a publish or rollback.

Each API replica runs one. Whoever changed the active adapter (a worker's publish, an admin's
rollback) only writes the store; every replica sees it on its next sync and swaps: load the new
version under a new name (`mem-<namespace>-v<N>`, never reloaded in place), activate it atomically,
keep the previous version loaded for an instant rollback, unload older ones. An adapter in an object
store (`service/object_store.py`) is fetched into this host's cache first, and a retired one's cached
copy is evicted once unloaded.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.orm import Session, sessionmaker

from service.adapter_naming import adapter_name, parse_adapter_name
from service.errors import AdapterStoreError, ReverieError
from service.object_store import AdapterObjectStore, is_object_address, local_adapter_folder
from service.serving.engines.base import Engine
from service.store import adapters as adapter_store

log = logging.getLogger(__name__)


class AdapterSync:
    def __init__(
        self, engine: Engine, session_factory: sessionmaker[Session], keep_previous: int = 1, on_swap=None,
        object_store: AdapterObjectStore | None = None,
    ):
        self.engine = engine
        self.object_store = object_store
        self.on_swap = on_swap or (lambda namespace, name: None)
        self.session_factory = session_factory
        self.keep_previous = keep_previous
        self._lock = asyncio.Lock()
        self._failed: dict[str, str] = {}  # adapter name -> why it could not be served

    def _read_store(self) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
        """What each namespace should be served with, and the adapters that must never be served again
        (name -> recorded path)."""
        with self.session_factory() as session:
            wanted = {
                a.namespace: (adapter_name(a.namespace, a.version), a.path)
                for a in adapter_store.active_adapters(session=session)
            }
            retired = {
                adapter_name(a.namespace, a.version): a.path for a in adapter_store.retired_adapters(session=session)
            }
        return wanted, retired

    async def sync_once(self) -> None:
        if not self.engine.ready:
            return
        async with self._lock:
            wanted, retired = await asyncio.to_thread(self._read_store)
            loaded = {info.name: info for info in self.engine.loaded_adapters()}
            for namespace, (name, path) in wanted.items():
                if self.engine.active_adapter(namespace) == name or name in self._failed:
                    continue
                try:
                    if name not in loaded:
                        folder = await asyncio.to_thread(local_adapter_folder, path, self.object_store)
                        await self.engine.load_adapter(name, str(folder))
                    await self.engine.activate_adapter(namespace, name)
                    self.on_swap(namespace, name)
                    log.info("namespace %r now served by %s", namespace, name)
                except AdapterStoreError as exc:  # the store is unreachable: the next sync tries again
                    log.warning("cannot fetch %s yet: %s; namespace %r keeps its adapter", name, exc.message,
                                namespace)
                except ReverieError as exc:
                    self._failed[name] = exc.message
                    log.error("cannot serve %s: %s; namespace %r keeps its adapter", name, exc.message, namespace)
            for name in list(loaded):
                parsed = parse_adapter_name(name)
                if parsed and parsed[0] not in wanted and self.engine.active_adapter(parsed[0]) == name:
                    await self.engine.activate_adapter(parsed[0], None)  # rolled back to the base model
                    self.on_swap(parsed[0], None)
            await self._unload_stale(set(retired))
            if self.object_store is not None:
                held = {info.name for info in self.engine.loaded_adapters()}
                await asyncio.to_thread(self._evict_retired, retired, held)

    def _evict_retired(self, retired: dict[str, str], held: set[str]) -> None:
        """Drop this host's cached copies of retired object-store adapters (they hold forgotten episodes)
        once the engine no longer holds them; forgetting deletes the objects themselves."""
        for name, path in retired.items():
            if is_object_address(path) and name not in held:
                self.object_store.evict(path)

    async def _unload_stale(self, retired: set[str]) -> None:
        """Unload retired adapters (they hold forgotten episodes) and versions older than the
        previous one (kept for an instant rollback)."""
        for info in self.engine.loaded_adapters():
            parsed = parse_adapter_name(info.name)
            if info.name in retired and parsed and self.engine.active_adapter(parsed[0]) != info.name:
                try:
                    await self.engine.unload_adapter(info.name)
                except ReverieError as exc:
                    log.warning("could not unload retired %s: %s", info.name, exc.message)
        by_namespace: dict[str, list[tuple[int, str]]] = {}
        for info in self.engine.loaded_adapters():
            parsed = parse_adapter_name(info.name)
            if parsed:
                by_namespace.setdefault(parsed[0], []).append((parsed[1], info.name))
        for namespace, versions in by_namespace.items():
            active = self.engine.active_adapter(namespace)
            others = sorted((v for v in versions if v[1] != active), reverse=True)
            for _, name in others[self.keep_previous :]:
                try:
                    await self.engine.unload_adapter(name)
                except ReverieError as exc:
                    log.warning("could not unload %s: %s", name, exc.message)

    async def run(self, interval_s: float) -> None:
        while True:
            try:
                await self.sync_once()
            except Exception:
                log.exception("adapter sync failed; retrying")
            await asyncio.sleep(interval_s)
