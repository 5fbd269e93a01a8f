"""The night job: enqueue one sleep run per namespace with a backlog, on a cron, from one leader.

The scheduler only enqueues; workers do the work. With Postgres, replicas compete for an advisory
lock and only its holder fires; with SQLite there is a single process. A daemon that was down when
the cron should have fired enqueues one run per namespace when it comes back (misfires coalesce).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from service.store import episodes as episode_store
from service.store import runs as run_store

log = logging.getLogger(__name__)

# Any fixed 64-bit number that no other application on the same Postgres uses.
LEADER_LOCK_KEY = 0x52657665726965  # "Reverie"


def cron_trigger(expression: str, tz: str) -> CronTrigger:
    return CronTrigger.from_crontab(expression, timezone=tz)


def previous_fire_time(trigger: CronTrigger, now: datetime, horizon: timedelta = timedelta(days=8)) -> datetime | None:
    """The last time at or before `now` that the cron fired (APScheduler only computes forward)."""
    fire = trigger.get_next_fire_time(None, now - horizon)
    previous = None
    while fire is not None and fire <= now:
        previous = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
    return previous


class Leadership:
    """Postgres advisory lock held on a dedicated connection; SQLite: always the leader."""

    def __init__(self, db: Engine):
        self.db = db
        self._connection: Connection | None = None
        self._lock = threading.Lock()

    def is_leader(self) -> bool:
        if self.db.dialect.name != "postgresql":
            return True
        with self._lock:
            try:
                if self._connection is None:
                    connection = self.db.connect()
                    got = connection.execute(select(func.pg_try_advisory_lock(LEADER_LOCK_KEY))).scalar()
                    connection.commit()
                    if not got:
                        connection.close()
                        return False
                    self._connection = connection
                    log.info("this process leads the night-job scheduler")
                self._connection.exec_driver_sql("SELECT 1")
                self._connection.commit()
                return True
            except Exception as exc:
                log.warning("lost the scheduler leadership: %s", exc)
                self.release()
                return False

    def release(self) -> None:
        if self._connection is not None:
            try:
                # Invalidate rather than return to the pool: the server session, and its lock, must end.
                self._connection.invalidate()
                self._connection.close()
            except Exception:
                pass
            self._connection = None


class NightScheduler:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        db: Engine,
        cron: str,
        tz: str = "UTC",
        backlog_threshold: int = 0,
        backlog_check_s: float = 30.0,
    ):
        self.session_factory = session_factory
        self.trigger = cron_trigger(cron, tz)
        self.leadership = Leadership(db)
        self.backlog_threshold = backlog_threshold
        self.backlog_check_s = backlog_check_s
        self._scheduler: BackgroundScheduler | None = None

    def start(self) -> None:
        scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600})
        scheduler.add_job(self.fire, self.trigger, id="night", name="night sleep")
        scheduler.add_job(self.catch_up, "date", id="catch-up")
        if self.backlog_threshold:
            scheduler.add_job(self.check_backlog, "interval", seconds=self.backlog_check_s, id="backlog")
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        self.leadership.release()

    def next_fire_time(self) -> datetime | None:
        return self.trigger.get_next_fire_time(None, datetime.now(timezone.utc))

    def _backlogs(self, minimum: int = 1) -> list[episode_store.NamespaceBacklog]:
        with self.session_factory() as session:
            return [b for b in episode_store.backlog(session=session) if b.episodes >= minimum]

    def _namespaces_with_backlog(self, minimum: int = 1) -> list[str]:
        return [b.namespace for b in self._backlogs(minimum)]

    def _enqueue(self, namespaces: list[str], trigger: str) -> list:
        runs = []
        for namespace in namespaces:
            with self.session_factory() as session:
                run, created = run_store.enqueue_run(session=session, namespace=namespace, trigger=trigger)
                if created:
                    log.info("queued %s sleep for namespace %r (run %s)", trigger, namespace, run.id)
                    runs.append(run)
        return runs

    def fire(self) -> list:
        """The cron fired: one run per namespace with a backlog (leader only)."""
        if not self.leadership.is_leader():
            return []
        return self._enqueue(self._namespaces_with_backlog(), "schedule")

    def catch_up(self, now: datetime | None = None) -> list:
        """After downtime: a namespace that had episodes waiting when the cron last fired, and no
        scheduled run since, gets one run (however many fire times were missed)."""
        if not self.leadership.is_leader():
            return []
        now = now or datetime.now(timezone.utc)
        missed = previous_fire_time(self.trigger, now)
        if missed is None:
            return []
        due = []
        for backlog in self._backlogs():
            with self.session_factory() as session:
                last = run_store.last_scheduled_run_at(session=session, namespace=backlog.namespace)
            oldest = backlog.oldest_at
            if oldest is not None and oldest < missed and (last is None or last < missed):
                due.append(backlog.namespace)
        return self._enqueue(due, "schedule")

    def check_backlog(self) -> list:
        if not self.leadership.is_leader():
            return []
        return self._enqueue(self._namespaces_with_backlog(self.backlog_threshold), "backlog")
