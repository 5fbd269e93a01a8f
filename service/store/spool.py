"""An fsync'd local spool: where episodes wait while the database is unreachable.

Appends go to `active.jsonl`, one JSON record a line, fsync'd before `append` returns. Draining
renames the active file to `draining-<n>.jsonl` (so appends continue in a new file), writes its
records to the store idempotently, and only then deletes it: a crash at any point replays, never loses.

A record the store refuses for good (not an outage: retrying cannot help) must not hold back the
ones behind it: it moves to `rejected.jsonl`, same format plus the error, and is logged. To retry
such records after fixing the cause, rename that file to `draining-0.jsonl`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from service.store.db import private_dir
from service.store.episodes import EpisodeRecord

log = logging.getLogger(__name__)

ACTIVE = "active.jsonl"
REJECTED = "rejected.jsonl"


def _always(_exc: BaseException) -> bool:
    return True


def fsync_path(path: Path) -> None:
    """fsync a file or a folder (a folder's fsync makes its renames and new entries durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_private(path: Path, mode: str):
    """Open for appending ("a") or writing ("w"); a new file is 0600 (it holds transcripts)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == "a" else os.O_TRUNC)
    return open(os.open(path, flags, 0o600), mode, encoding="utf-8")


class Spool:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._drain_lock = threading.Lock()

    def append(self, record: EpisodeRecord) -> None:
        """Durably append one record; raises OSError when the disk refuses."""
        self.append_many([record])

    def append_many(self, records: list[EpisodeRecord]) -> None:
        """Durably append records with one fsync; raises OSError when the disk refuses."""
        lines = "".join(json.dumps(r.to_json(), separators=(",", ":")) + "\n" for r in records)
        with self._lock:
            private_dir(self.directory)
            path = self.directory / ACTIVE
            created = not path.exists()
            with _open_private(path, "a") as handle:
                handle.write(lines)
                handle.flush()
                os.fsync(handle.fileno())
            if created:
                fsync_path(self.directory)

    def _pending_files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("draining-*.jsonl"))

    def depth(self) -> int:
        """Records waiting (a record's pending and final states count separately)."""
        files = self._pending_files() + [self.directory / ACTIVE]
        total = 0
        for path in files:
            try:
                with open(path, "rb") as handle:
                    total += sum(1 for _ in handle)
            except FileNotFoundError:
                continue
        return total

    @staticmethod
    def _read(path: Path) -> list[EpisodeRecord]:
        """Latest state of each episode in the file; a torn last line (crash mid-append) is skipped."""
        latest: dict = {}
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                try:
                    record = EpisodeRecord.from_json(json.loads(line))
                except (ValueError, KeyError, TypeError):
                    log.warning("spool %s line %d is unreadable; skipped", path.name, number)
                    continue
                latest[record.id] = record
        return list(latest.values())

    def drain(
        self, write: Callable[[list[EpisodeRecord]], None], is_outage: Callable[[BaseException], bool] = _always
    ) -> int:
        """Hand spooled records to `write` (an idempotent store upsert); returns how many were stored
        (records set aside as rejected are not counted: `reject` logs each of them).

        If `write` fails with an outage, the records stay spooled for the next attempt (and the error is
        raised); any other failure is retried record by record, and those refused again are rejected.
        """
        with self._drain_lock:
            with self._lock:
                active = self.directory / ACTIVE
                if active.exists():
                    target = self.directory / f"draining-{time.time_ns()}.jsonl"
                    os.replace(active, target)
                    fsync_path(self.directory)
            written = 0
            for path in self._pending_files():
                records = self._read(path)
                try:
                    write(records)
                except Exception as exc:
                    if is_outage(exc):
                        raise
                    written -= len(self.write_each(records, write, is_outage))
                path.unlink()
                written += len(records)
            if written:
                fsync_path(self.directory)
            return written

    def write_each(
        self, records: list[EpisodeRecord], write: Callable[[list[EpisodeRecord]], None],
        is_outage: Callable[[BaseException], bool],
    ) -> list[EpisodeRecord]:
        """Write records one at a time, rejecting those `write` refuses; returns the rejected ones.

        Raises the first outage (the caller keeps or spools the records; writing is idempotent).
        """
        refused: list[tuple[EpisodeRecord, BaseException]] = []
        for record in records:
            try:
                write([record])
            except Exception as exc:
                if is_outage(exc):
                    raise
                refused.append((record, exc))
        if refused:
            self.reject(refused)
        return [record for record, _ in refused]

    def reject(self, refused: list[tuple[EpisodeRecord, BaseException]]) -> None:
        """Durably set aside records the store refuses for good, with the reason; raises OSError."""
        lines = "".join(
            json.dumps({**record.to_json(), "rejected_because": f"{type(exc).__name__}: {exc}"}, separators=(",", ":")) + "\n"
            for record, exc in refused
        )
        with self._lock:
            private_dir(self.directory)
            with _open_private(self.directory / REJECTED, "a") as handle:
                handle.write(lines)
                handle.flush()
                os.fsync(handle.fileno())
            fsync_path(self.directory)
        for record, exc in refused:
            log.error("episode %s refused by the store, kept in %s: %s", record.id, REJECTED, str(exc).splitlines()[0])

    def rejected(self) -> int:
        """How many records were set aside as refused by the store."""
        try:
            with open(self.directory / REJECTED, "rb") as handle:
                return sum(1 for _ in handle)
        except FileNotFoundError:
            return 0

    def purge(self, forget: Callable[[EpisodeRecord], bool]) -> int:
        """Remove every spooled record for which `forget` is true (forgetting); returns how many lines."""
        removed = 0
        with self._drain_lock, self._lock:
            files = self._pending_files() + [self.directory / ACTIVE, self.directory / REJECTED]
            for path in files:
                if not path.exists():
                    continue
                kept, dropped = [], 0
                with open(path, encoding="utf-8") as handle:
                    for line in handle:
                        try:
                            record = EpisodeRecord.from_json(json.loads(line))
                        except (ValueError, KeyError, TypeError):
                            kept.append(line)
                            continue
                        if forget(record):
                            dropped += 1
                        else:
                            kept.append(line)
                if not dropped:
                    continue
                tmp = path.with_suffix(".purge")
                with _open_private(tmp, "w") as handle:
                    handle.writelines(kept)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
                removed += dropped
            if removed:
                fsync_path(self.directory)
        return removed
