"""The overview's numbers per namespace: the backlog now and over time, episodes per day, the active
adapter and the runs. The admin API and the dashboard shape them for the wire."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy.orm import Session

from service.store import adapters as adapter_store
from service.store import episodes as episode_store
from service.store import runs as run_store
from service.store.models import Adapter, SleepRun


@dataclass
class NamespaceOverview:
    namespace: str
    backlog_episodes: int
    backlog_tokens: int
    oldest_at: datetime | None
    active_adapter: Adapter | None
    live_run: SleepRun | None
    last_run: SleepRun | None
    episodes_per_day: list[tuple[date, int]]  # every day of the window, zeros included
    backlog_history: list[tuple[datetime, int]]


def first_moment(now: datetime, days: int) -> datetime:
    """UTC midnight of the first of the `days` days that end today."""
    return datetime.combine(now.date() - timedelta(days=days - 1), time(), tzinfo=timezone.utc)


def namespace_overviews(
    *, session: Session, now: datetime, days: int = 14, namespace: str | None = None
) -> list[NamespaceOverview]:
    """Every namespace's overview (or only `namespace`'s) over the `days` days that end today."""
    since = first_moment(now, days)
    first_day = since.date()
    backlogs = {entry.namespace: entry for entry in episode_store.backlog(session=session)}
    per_day: dict[str, dict[date, int]] = {}
    for ns, day, count in episode_store.episodes_per_day(session=session, since=since):
        per_day.setdefault(ns, {})[day] = count
    names = [namespace] if namespace else episode_store.namespaces(session=session)
    overviews = []
    for ns in names:
        entry = backlogs.get(ns)
        last = run_store.list_runs(session=session, namespace=ns, limit=1)
        counts = per_day.get(ns, {})
        window = [first_day + timedelta(days=i) for i in range(days)]
        overviews.append(
            NamespaceOverview(
                namespace=ns,
                backlog_episodes=entry.episodes if entry else 0,
                backlog_tokens=entry.tokens if entry else 0,
                oldest_at=episode_store.as_utc(entry.oldest_at) if entry and entry.oldest_at else None,
                active_adapter=adapter_store.active_adapter(session=session, namespace=ns),
                live_run=run_store.live_run(session=session, namespace=ns),
                last_run=last[0] if last else None,
                episodes_per_day=[(day, counts.get(day, 0)) for day in window],
                backlog_history=episode_store.backlog_history(session=session, namespace=ns, since=since, until=now),
            )
        )
    return overviews
