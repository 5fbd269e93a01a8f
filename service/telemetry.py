"""Telemetry: the Prometheus collectors that `GET /metrics` exposes.

Request-path numbers are counted where they happen; store-derived ones (backlog, runs, spool) are
read at scrape time, so they are right whichever process (API or worker) did the work."""

from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from service import __version__
from service.adapter_naming import parse_adapter_name
from service.store import episodes as episode_store
from service.store import monitoring
from service.store import runs as run_store
from service.store import workers as worker_store

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)
RUN_BUCKETS = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)


class Telemetry:
    """One registry per app (tests run several apps in one process)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.request_latency = Histogram(
            "reverie_request_latency_seconds", "Chat completion latency, request to last byte.", ["stream"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.time_to_first_token = Histogram(
            "reverie_time_to_first_token_seconds", "Request to first generated token.",
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.tokens = Counter("reverie_tokens", "Tokens processed.", ["kind"], registry=self.registry)
        self.requests = Counter("reverie_requests", "HTTP responses of the API, by status.", ["status"], registry=self.registry)
        self.adapter_swaps = Counter("reverie_adapter_swaps", "Adapter activations served.", ["namespace"], registry=self.registry)
        _build_info(self.registry)

    def watch(self, *, engine, recorder, session_factory, lease_s: float = 60.0) -> None:
        """Gauges and run statistics read when Prometheus scrapes; a run silent for `lease_s` is stalled."""
        self.registry.register(_StateCollector(engine, recorder, session_factory, lease_s))


def _build_info(registry: CollectorRegistry) -> None:
    Info("reverie_build", "The Reverie release this process runs.", registry=registry).info({"version": __version__})


def worker_registry(worker) -> CollectorRegistry:
    """The metrics `reverie worker` serves on its own port: build info and its polling loop."""
    registry = CollectorRegistry()
    _build_info(registry)
    registry.register(_WorkerCollector(worker))
    return registry


class _WorkerCollector:
    def __init__(self, worker):
        self.worker = worker

    def describe(self):
        return []

    def collect(self):
        polled = GaugeMetricFamily(
            "reverie_worker_last_poll_timestamp_seconds", "When this worker last looked for a run (Unix time)."
        )
        if self.worker.polled_at is not None:
            polled.add_metric([], self.worker.polled_at)
        yield polled
        busy = GaugeMetricFamily("reverie_worker_busy", "1 while this worker runs a sleep run, else 0.")
        busy.add_metric([], 1 if self.worker.running is not None else 0)
        yield busy


class _StateCollector:
    def __init__(self, engine, recorder, session_factory, lease_s: float):
        self.engine, self.recorder, self.session_factory = engine, recorder, session_factory
        self.lease_s = lease_s

    def describe(self):
        return []

    def collect(self):
        queue = GaugeMetricFamily("reverie_queue_depth", "Requests waiting for the engine.")
        queue.add_metric([], self.engine.queue_depth)
        yield queue
        spool = GaugeMetricFamily("reverie_spool_depth", "Episode records waiting in the local spool.")
        spool.add_metric([], self.recorder.spool.depth())
        yield spool
        rejected = CounterMetricFamily(
            "reverie_spool_rejected_episodes", "Episode records the store refused, kept in rejected.jsonl."
        )
        rejected.add_metric([], self.recorder.spool.rejected())
        yield rejected
        try:
            yield from self._from_store()
        except Exception as exc:  # a scrape during a store outage still reports the rest
            log.warning("metrics: store unavailable: %s", exc)

    def _from_store(self):
        backlog = GaugeMetricFamily("reverie_backlog_episodes", "Episodes not yet consolidated.", labels=["namespace"])
        runs_total = CounterMetricFamily("reverie_sleep_runs", "Finished sleep runs by outcome.", labels=["outcome"])
        durations = HistogramMetricFamily(
            "reverie_sleep_run_duration_seconds", "Sleep run wall time by outcome.", labels=["outcome"]
        )
        with self.session_factory() as session:
            backlog_now = episode_store.backlog(session=session)
            for entry in backlog_now:
                backlog.add_metric([entry.namespace], entry.episodes)
            finished = run_store.finished_run_times(session=session)
            yield from self._operations(session, backlog_now)
        by_outcome: dict[str, list[float]] = {}
        counts: dict[str, int] = {}
        for state, started, ended in finished:
            by_outcome.setdefault(state, [])
            counts[state] = counts.get(state, 0) + 1
            if started and ended:
                by_outcome[state].append((ended - started).total_seconds())
        for outcome, seconds in sorted(by_outcome.items()):
            runs_total.add_metric([outcome], counts[outcome])
            buckets, cumulative = [], 0
            for bound in RUN_BUCKETS:
                cumulative = sum(1 for s in seconds if s <= bound)
                buckets.append((str(float(bound)), cumulative))
            buckets.append(("+Inf", len(seconds)))
            durations.add_metric([outcome], buckets, sum_value=sum(seconds))
        yield backlog
        yield runs_total
        yield durations

    def _operations(self, session, backlog_now):
        """What alerts read: the adapter served, the backlog's size and age, the last good sleep, live
        runs by state (stalled: lease expired), and how long ago each worker beat."""
        now = time.time()
        served = GaugeMetricFamily(
            "reverie_adapter_version", "Adapter version this replica serves per namespace (0: the base model).",
            labels=["namespace"],
        )
        for namespace in episode_store.namespaces(session=session):
            parsed = parse_adapter_name(self.engine.active_adapter(namespace) or "")
            served.add_metric([namespace], parsed[1] if parsed else 0)
        yield served
        tokens = GaugeMetricFamily("reverie_backlog_tokens", "Tokens of the episodes not yet consolidated.", labels=["namespace"])
        age = GaugeMetricFamily(
            "reverie_backlog_oldest_episode_age_seconds", "Age of the oldest episode not yet consolidated.",
            labels=["namespace"],
        )
        for entry in backlog_now:
            tokens.add_metric([entry.namespace], entry.tokens)
            if entry.oldest_at is not None:
                age.add_metric([entry.namespace], max(0.0, now - episode_store.as_utc(entry.oldest_at).timestamp()))
        yield tokens
        yield age
        last = GaugeMetricFamily(
            "reverie_last_successful_sleep_timestamp_seconds", "When the namespace's last published sleep run ended.",
            labels=["namespace"],
        )
        for namespace, finished in sorted(monitoring.last_published_at(session=session).items()):
            last.add_metric([namespace], episode_store.as_utc(finished).timestamp())
        yield last
        live = GaugeMetricFamily(
            "reverie_sleep_runs_live", "Unfinished sleep runs: queued, running, stalled (lease expired).", labels=["state"]
        )
        for state, count in monitoring.live_run_counts(session=session, lease_s=self.lease_s).items():
            live.add_metric([state], count)
        yield live
        beats = GaugeMetricFamily(
            "reverie_worker_heartbeat_age_seconds", "Seconds since each registered sleep worker last beat.",
            labels=["worker"],
        )
        alive = GaugeMetricFamily("reverie_workers_alive", "Sleep workers that beat within the lease.")
        liveness = worker_store.liveness(session=session, lease_s=self.lease_s)
        for worker in liveness.workers:
            beats.add_metric([worker.id], max(0.0, now - episode_store.as_utc(worker.beat_at).timestamp()))
        alive.add_metric([], liveness.workers_alive)
        yield beats
        yield alive
