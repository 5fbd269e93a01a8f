"""What an operator alerts on, read from the store at scrape time: live runs by state (stalled as
`store.workers.Liveness` tells it) and the last published run per namespace."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.store import workers as worker_store
from service.store.models import RunState, SleepRun


def live_run_counts(*, session: Session, lease_s: float) -> dict[str, int]:
    """{"queued", "running", "stalled"}: live runs now. A running (or evaluating) run whose lease
    expired is stalled, not running: its worker went silent and any worker may retake it."""
    liveness = worker_store.liveness(session=session, lease_s=lease_s)
    counts = {RunState.QUEUED: 0, RunState.RUNNING: 0, RunState.STALLED: 0}
    for run in session.scalars(select(SleepRun).where(SleepRun.state.in_(RunState.LIVE))):
        shown = liveness.state_of(run)
        counts[RunState.RUNNING if shown == RunState.EVALUATING else shown] += 1
    return counts


def last_published_at(*, session: Session) -> dict[str, datetime]:
    """Per namespace: when its latest published (successful) sleep run finished."""
    query = (
        select(SleepRun.namespace, func.max(SleepRun.finished_at))
        .where(SleepRun.state == RunState.PUBLISHED, SleepRun.finished_at.is_not(None))
        .group_by(SleepRun.namespace)
    )
    return {namespace: finished for namespace, finished in session.execute(query)}
