"""What an operator alerts on, read from the store at scrape time: runs by state (stalled included),
the last published run per namespace, and how long ago each worker holding a run was heard from."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.store.models import RunState, SleepRun, utcnow


def live_run_counts(*, session: Session, lease_s: float, now: datetime | None = None) -> dict[str, int]:
    """{"queued", "running", "stalled"}: live runs now. A running (or evaluating) run whose heartbeat is
    older than `lease_s` is stalled, not running: its worker went silent and any worker may retake it."""
    stale = (now or utcnow()) - timedelta(seconds=lease_s)
    counts = {"queued": 0, "running": 0, "stalled": 0}
    rows = session.execute(select(SleepRun.state, SleepRun.heartbeat_at).where(SleepRun.state.in_(RunState.LIVE)))
    for state, beat in rows:
        if state == RunState.QUEUED:
            counts["queued"] += 1
        elif beat is not None and beat < stale:
            counts["stalled"] += 1
        else:
            counts["running"] += 1
    return counts


def last_published_at(*, session: Session) -> dict[str, datetime]:
    """Per namespace: when its latest published (successful) sleep run finished."""
    query = (
        select(SleepRun.namespace, func.max(SleepRun.finished_at))
        .where(SleepRun.state == RunState.PUBLISHED, SleepRun.finished_at.is_not(None))
        .group_by(SleepRun.namespace)
    )
    return {namespace: finished for namespace, finished in session.execute(query)}


def run_holder_heartbeats(*, session: Session) -> dict[str, datetime]:
    """Per worker (lease owner) holding a live run: its latest heartbeat on that run. Idle workers do not
    show here; their own /metrics (`reverie worker`) does."""
    query = (
        select(SleepRun.lease_owner, func.max(SleepRun.heartbeat_at))
        .where(
            SleepRun.state.in_((RunState.RUNNING, RunState.EVALUATING)),
            SleepRun.lease_owner.is_not(None),
            SleepRun.heartbeat_at.is_not(None),
        )
        .group_by(SleepRun.lease_owner)
    )
    return {owner: beat for owner, beat in session.execute(query)}
