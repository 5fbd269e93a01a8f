"""Sleep runs: enqueue (one live run per namespace), claim with a lease, fenced progress and results.

Every write of a claimed run names the epoch it was claimed at: a worker whose lease expired and was
taken over (epoch moved on) finds its writes refused (`LeaseLostError`) instead of clobbering the new
owner's.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.store.models import RunState, SleepRun, utcnow


class LeaseLostError(RuntimeError):
    """Another worker owns this run now."""


def live_run(*, session: Session, namespace: str) -> SleepRun | None:
    return session.scalar(select(SleepRun).where(SleepRun.namespace == namespace, SleepRun.state.in_(RunState.LIVE)))


def enqueue_run(*, session: Session, namespace: str, trigger: str) -> tuple[SleepRun, bool]:
    """Queue a run for `namespace`, or return the one already live. Returns (run, created). Commits."""
    existing = live_run(session=session, namespace=namespace)
    if existing is not None:
        return existing, False
    run = SleepRun(id=uuid.uuid4(), namespace=namespace, trigger=trigger, state=RunState.QUEUED)
    session.add(run)
    try:
        session.commit()
    except IntegrityError:  # another replica queued one between our read and our insert
        session.rollback()
        return live_run(session=session, namespace=namespace), False
    return run, True


def claim_run(*, session: Session, owner: str, lease_s: float, run_id: uuid.UUID | None = None) -> SleepRun | None:
    """Take the oldest queued run, or a live run whose lease expired. Commits.

    Postgres: `FOR UPDATE SKIP LOCKED` keeps concurrent workers off each other's candidates; the
    epoch compare-and-set below makes the claim safe on SQLite too.
    """
    stale = utcnow() - timedelta(seconds=lease_s)
    query = select(SleepRun).where(
        or_(
            SleepRun.state == RunState.QUEUED,
            SleepRun.state.in_((RunState.RUNNING, RunState.EVALUATING)) & (SleepRun.heartbeat_at < stale),
        )
    )
    if run_id is not None:
        query = query.where(SleepRun.id == run_id)
    query = query.order_by(SleepRun.created_at).limit(1)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    run = session.scalar(query)
    if run is None:
        session.rollback()
        return None
    now = utcnow()
    claimed = session.execute(
        update(SleepRun)
        .where(SleepRun.id == run.id, SleepRun.epoch == run.epoch)
        .values(
            state=RunState.RUNNING,
            lease_owner=owner,
            heartbeat_at=now,
            epoch=run.epoch + 1,
            started_at=run.started_at or now,
            error=None,
        )
    ).rowcount
    session.commit()
    if not claimed:
        return None
    session.refresh(run)
    return run


def _fenced_update(session: Session, run_id: uuid.UUID, epoch: int, **values) -> None:
    done = session.execute(
        update(SleepRun)
        .where(SleepRun.id == run_id, SleepRun.epoch == epoch, SleepRun.state.in_(RunState.LIVE))
        .values(**values)
    ).rowcount
    if not done:
        raise LeaseLostError(f"run {run_id} is no longer ours (epoch {epoch})")


def heartbeat(
    *,
    session: Session,
    run_id: uuid.UUID,
    epoch: int,
    phase: str | None = None,
    step: int | None = None,
    total: int | None = None,
    state: str | None = None,
    metrics: dict | None = None,
) -> None:
    """Renew the lease and report progress. Commits. Raises `LeaseLostError`."""
    values: dict = {"heartbeat_at": utcnow()}
    for name, value in (("phase", phase), ("step", step), ("total", total), ("state", state), ("metrics", metrics)):
        if value is not None:
            values[name] = value
    _fenced_update(session, run_id, epoch, **values)
    session.commit()


def finish_run(
    *, session: Session, run_id: uuid.UUID, epoch: int, state: str, metrics: dict | None = None, error: str | None = None
) -> None:
    """Move a claimed run to a final state (inside the caller's transaction; it commits)."""
    assert state in RunState.FINAL
    values: dict = {"state": state, "finished_at": utcnow(), "heartbeat_at": utcnow()}
    if metrics is not None:
        values["metrics"] = metrics
    if error is not None:
        values["error"] = error
    _fenced_update(session, run_id, epoch, **values)


def cancel_run(*, session: Session, run_id: uuid.UUID, reason: str = "cancelled by an operator") -> SleepRun:
    """Cancel a queued or running run. Commits. Its worker finds its next heartbeat or progress write
    fenced (the run is no longer live) and stops without publishing; its episodes stay in the backlog.

    Raises `LookupError` for an unknown run, `ValueError` for one already finished."""
    now = utcnow()
    done = session.execute(
        update(SleepRun)
        .where(SleepRun.id == run_id, SleepRun.state.in_(RunState.LIVE))
        .values(state=RunState.CANCELLED, error=reason, finished_at=now)
    ).rowcount
    session.commit()
    run = session.get(SleepRun, run_id)
    if run is None:
        raise LookupError(f"no sleep run {run_id}")
    session.refresh(run)
    if not done:
        raise ValueError(f"sleep run {run_id} already finished ({run.state})")
    return run


def get_run(*, session: Session, run_id: uuid.UUID) -> SleepRun | None:
    return session.get(SleepRun, run_id)


def list_runs(*, session: Session, namespace: str | None = None, limit: int = 50) -> list[SleepRun]:
    query = select(SleepRun)
    if namespace:
        query = query.where(SleepRun.namespace == namespace)
    return list(session.scalars(query.order_by(SleepRun.created_at.desc()).limit(limit)))


def last_scheduled_run_at(*, session: Session, namespace: str) -> datetime | None:
    return session.scalar(
        select(SleepRun.created_at)
        .where(SleepRun.namespace == namespace, SleepRun.trigger == "schedule")
        .order_by(SleepRun.created_at.desc())
        .limit(1)
    )


def finished_run_times(*, session: Session) -> list[tuple[str, datetime | None, datetime | None]]:
    """(final state, started_at, finished_at) of every finished run: the metrics' run outcomes."""
    query = select(SleepRun.state, SleepRun.started_at, SleepRun.finished_at).where(SleepRun.state.in_(RunState.FINAL))
    return [tuple(row) for row in session.execute(query).all()]
