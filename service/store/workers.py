"""Sleep workers' heartbeats, and what they say about runs: stalled (lease expired) or waiting for a worker.

A worker upserts its row at each poll and with each lease renewal; a worker is alive while its last
beat is younger than the lease. A row silent for a day is dropped at the next beat of any worker.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.store.models import RunState, SleepRun, SleepWorker, utcnow

FORGET_AFTER = timedelta(days=1)


def beat(*, session: Session, worker_id: str, run_id: uuid.UUID | None) -> None:
    """Record that `worker_id` is alive and holds `run_id` (None: idle). Commits."""
    now = utcnow()
    done = session.execute(
        update(SleepWorker).where(SleepWorker.id == worker_id).values(beat_at=now, run_id=run_id)
    ).rowcount
    if not done:
        session.add(SleepWorker(id=worker_id, started_at=now, beat_at=now, run_id=run_id))
    session.execute(delete(SleepWorker).where(SleepWorker.beat_at < now - FORGET_AFTER))
    try:
        session.commit()
    except IntegrityError:  # our own first beat raced with itself (lease thread and loop): one row is enough
        session.rollback()


def stopped(*, session: Session, worker_id: str) -> None:
    """A worker that stops cleanly removes its row. Commits."""
    session.execute(delete(SleepWorker).where(SleepWorker.id == worker_id))
    session.commit()


def list_workers(*, session: Session) -> list[SleepWorker]:
    return list(session.scalars(select(SleepWorker).order_by(SleepWorker.started_at)))


@dataclass(frozen=True)
class Liveness:
    """What the runs' readers need to tell a live run from a stalled one: the lease and the workers."""

    lease_s: float
    now: datetime
    workers: tuple[SleepWorker, ...] = ()

    def alive(self, worker: SleepWorker) -> bool:
        return worker.beat_at >= self.now - timedelta(seconds=self.lease_s)

    @property
    def workers_alive(self) -> int:
        return sum(1 for worker in self.workers if self.alive(worker))

    def state_of(self, run: SleepRun) -> str:
        """The stored state, except a claimed run whose lease expired shows as `stalled`."""
        if run.state in (RunState.RUNNING, RunState.EVALUATING) and self._expired(run):
            return RunState.STALLED
        return run.state

    def note_of(self, run: SleepRun) -> str | None:
        """One sentence for an operator when a live run is not making progress, else None."""
        waiting = "no sleep worker is alive to take it" if not self.workers_alive else None
        if self.state_of(run) == RunState.STALLED:
            silent = int((self.now - run.heartbeat_at).total_seconds())
            return (f"worker {run.lease_owner} has been silent for {silent} s (lease {self.lease_s:g} s); "
                    f"the run is retaken by the next worker that polls" + (f", but {waiting}" if waiting else ""))
        if run.state == RunState.QUEUED and waiting:
            return f"queued, but {waiting}"
        return None

    def _expired(self, run: SleepRun) -> bool:
        return run.heartbeat_at is None or run.heartbeat_at < self.now - timedelta(seconds=self.lease_s)


def liveness(*, session: Session, lease_s: float) -> Liveness:
    return Liveness(lease_s=lease_s, now=utcnow(), workers=tuple(list_workers(session=session)))
