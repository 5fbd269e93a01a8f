"""The recorder: every interaction becomes an episode, durably, before the client sees its end.

Writes go through one writer thread that commits whatever is queued in a single transaction (group
commit): each request still waits for its own commit, but concurrent requests share one fsync. When
the database fails, records go to the fsync'd spool and a relay drains it once the store is back. When
both fail the caller gets `StoreUnavailableError` (503): never an answer that was not recorded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import queue
import threading
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from service.errors import StoreUnavailableError
from service.store import episodes as store
from service.store.db import private_dir
from service.store.episodes import EpisodeRecord
from service.store.forgetting import sweep_tombstones
from service.store.models import EpisodeStatus
from service.store.spool import Spool

log = logging.getLogger(__name__)

# After a database failure, skip it for this long instead of making every request wait for a timeout.
_STORE_BACKOFF_S = 2.0
_MAX_BATCH = 1000


# Postgres SQLSTATEs of a schema that is not there (a recreated database): undefined table, column, schema.
_SCHEMA_MISSING_SQLSTATES = frozenset({"42P01", "42703", "3F000"})


def schema_missing(exc: BaseException) -> bool:
    """The store answers but lacks Reverie's tables or columns (recreated, not yet migrated)."""
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) in _SCHEMA_MISSING_SQLSTATES:
        return True
    return isinstance(exc, DBAPIError) and any(text in str(orig) for text in ("no such table", "no such column"))


def store_is_down(exc: BaseException) -> bool:
    """A failure to reach the store, or a store without its tables (retry later: an operator can fix
    either), not a record the store refuses (retrying cannot help, the record is set aside)."""
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeoutError)) or schema_missing(exc):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _settle(items) -> None:
    for future, outcome in items:
        if future.done():  # an asyncio waiter cancelled meanwhile
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def _notify(items) -> None:
    """Wake the waiters of a batch: one hop into each event loop, not one per episode."""
    by_loop: dict = {}
    plain = []
    for future, outcome in items:
        if isinstance(future, asyncio.Future):
            by_loop.setdefault(future.get_loop(), []).append((future, outcome))
        else:
            plain.append((future, outcome))
    _settle(plain)
    for loop, waiting in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle, waiting)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass


class Recorder:
    def __init__(self, session_factory: sessionmaker[Session], spool: Spool, pending_timeout_s: float = 600.0):
        self.session_factory = session_factory
        self.spool = spool
        # A request pending longer than this died with its process: its episode is aborted.
        self.pending_timeout_s = pending_timeout_s
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._store_down_until = 0.0
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._writer_loop, name="episode-writer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread and not self._closed:
            self._closed = True
            self._jobs.put(None)
            self._thread.join(timeout=10)

    @property
    def store_available(self) -> bool:
        return time.monotonic() >= self._store_down_until

    def spool_writable(self) -> bool:
        directory = self.spool.directory
        try:
            private_dir(directory)
        except OSError:
            return False
        return os.access(directory, os.W_OK)

    # -- writes ----------------------------------------------------------------------------------
    async def record(self, record: EpisodeRecord) -> str:
        """Persist this state of the episode; returns "store", "spool" or "rejected" (refused by the
        store, set aside on local disk: see `Spool.reject`). Safe to call when cancelled."""
        future = asyncio.get_running_loop().create_future()
        self._enqueue(record, future)
        return await asyncio.shield(future)

    def record_sync(self, record: EpisodeRecord) -> str:
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._enqueue(record, future)
        return future.result()

    def _enqueue(self, record: EpisodeRecord, future) -> None:
        if self._closed:
            _settle([(future, StoreUnavailableError("the recorder is shut down"))])
        else:
            self._jobs.put((record, future))

    def _writer_loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            batch = [job]
            while len(batch) < _MAX_BATCH:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._jobs.put(None)
                    break
                batch.append(more)
            records = [record for record, _ in batch]
            try:
                outcome = self._write_batch(records)
            except Exception as exc:  # a dead writer thread would leave every later request waiting
                log.exception("episode writer failed")
                outcome = StoreUnavailableError(f"the episode could not be recorded: {type(exc).__name__}")
            outcomes = outcome if isinstance(outcome, list) else [outcome] * len(batch)
            _notify([(future, each) for (_, future), each in zip(batch, outcomes, strict=True)])

    def _write_batch(self, records: list[EpisodeRecord]) -> str | BaseException | list[str]:
        """Store, else spool (one fsync for the batch); the outcome every waiter of the batch gets, or
        one outcome per record ("store" or "rejected") when the batch was written record by record.

        A batch the store refuses while reachable is written record by record, so one bad record
        neither fails its neighbours nor makes the store look down; it alone is set aside.
        """
        if self.store_available:
            try:
                self.write_to_store(records)
                return "store"
            except Exception as exc:
                if not store_is_down(exc):
                    return self._write_each(records)
                self._mark_store_down(exc)
        return self._spool(records)

    def _write_each(self, records: list[EpisodeRecord]) -> str | BaseException | list[str]:
        try:
            rejected = {id(record) for record in self.spool.write_each(records, self.write_to_store, store_is_down)}
            return ["rejected" if id(record) in rejected else "store" for record in records]
        except OSError as exc:
            log.error("could not set aside a refused episode: %s", exc)
            return StoreUnavailableError("the episode store refused the episode and the local spool is unavailable")
        except Exception as exc:  # an outage midway: all of them wait in the spool (rewriting is idempotent)
            self._mark_store_down(exc)
            return self._spool(records)

    def _spool(self, records: list[EpisodeRecord]) -> str | BaseException:
        try:
            self.spool.append_many(records)
            return "spool"
        except OSError as exc:
            log.error("spool write failed: %s", exc)
            return StoreUnavailableError("the episode store and the local spool are both unavailable")

    def write_to_store(self, records: list[EpisodeRecord]) -> None:
        """One transaction; the final state of each episode wins over an earlier one in the batch."""
        latest = {record.id: record for record in records}
        with self.session_factory() as session, session.begin():
            # Two states of one episode in a batch: the pending insert first, then the final update.
            pending = [r for r in records if r.status == "pending" and latest[r.id] is not r]
            if pending:
                store.upsert_episodes(session=session, records=pending)
            store.upsert_episodes(session=session, records=list(latest.values()))

    def _mark_store_down(self, exc: Exception) -> None:
        log.warning("episode store unavailable, spooling: %s", str(exc).splitlines()[0])
        self._store_down_until = time.monotonic() + _STORE_BACKOFF_S

    def claim_idempotency_key(self, record: EpisodeRecord) -> EpisodeRecord | None:
        """Record `record` as pending unless its Idempotency-Key is taken; returns the taker.

        A taker that ended in `error` or `aborted`, or is `pending` past the request timeout (its
        process died), gives its row to this retry (same id); a taker that asked something else is
        returned as is (see `store.same_request`). With the store down the claim is spooled:
        duplicates cannot be detected until it is back.
        """
        try:
            with self.session_factory() as session, session.begin():
                existing = store.get_by_idempotency_key(
                    session=session, namespace=record.namespace, key=record.idempotency_key
                )
                if existing is None:
                    store.upsert_episodes(session=session, records=[record])
                    return None
                if not store.same_request(existing, record) or existing.status == EpisodeStatus.COMPLETE:
                    return existing
                if existing.status == EpisodeStatus.PENDING and not self._expired(existing):
                    return existing
                record.id, record.created_at = existing.id, existing.created_at
                store.reset_for_retry(session=session, record=record)
                return None
        except IntegrityError:
            with self.session_factory() as session:
                return store.get_by_idempotency_key(
                    session=session, namespace=record.namespace, key=record.idempotency_key
                )
        except SQLAlchemyError as exc:
            if not store_is_down(exc):
                raise
            self._mark_store_down(exc)
            self.record_sync(record)
            return None

    def _expired(self, record: EpisodeRecord) -> bool:
        created = record.created_at if record.created_at.tzinfo else record.created_at.replace(tzinfo=timezone.utc)
        return created < datetime.now(timezone.utc) - timedelta(seconds=self.pending_timeout_s)

    def expire_pending(self) -> int:
        """Abort episodes pending past the request timeout (left by a crash); returns how many."""
        before = datetime.now(timezone.utc) - timedelta(seconds=self.pending_timeout_s)
        with self.session_factory() as session, session.begin():
            expired = store.expire_pending(session=session, before=before)
        if expired:
            log.warning("aborted %d episodes pending for over %.0f s (their requests died with a process)", expired, self.pending_timeout_s)
        return expired

    # -- spool relay -----------------------------------------------------------------------------
    def drain_spool(self) -> int:
        """Move spooled episodes into the store; returns how many were stored. Retried later."""
        try:
            if not self.store_available:
                with self.session_factory() as session:
                    store.probe(session=session)
            written = self.spool.drain(self.write_to_store, store_is_down)
        except Exception as exc:
            if not store_is_down(exc):
                raise
            self._mark_store_down(exc)
            return 0
        self._store_down_until = 0.0
        if written:
            log.info("drained %d spooled episodes into the store", written)
        return written

    def _sweep_tombstones(self) -> int:
        with self.session_factory() as session, session.begin():
            return sweep_tombstones(session=session)

    async def run_relay(self, interval_s: float, sweep_every_s: float = 600.0) -> None:
        """Drain the spool forever (cancel to stop); at start and now and then, remove expired forgetting
        tombstones and abort episodes pending past the request timeout."""
        last_sweep = float("-inf")  # sweep at start: a crash leaves pending episodes behind
        while True:
            try:
                await asyncio.to_thread(self.drain_spool)
                if self.store_available and time.monotonic() - last_sweep > sweep_every_s:
                    last_sweep = time.monotonic()
                    await asyncio.to_thread(self._sweep_tombstones)
                    await asyncio.to_thread(self.expire_pending)
            except Exception:  # a relay that dies silently would lose nothing but stall; keep it alive
                log.exception("spool relay failed; retrying")
            await asyncio.sleep(interval_s)
