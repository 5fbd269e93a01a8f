"""Telemetry: the Prometheus collectors that `GET /metrics` exposes.

Request-path numbers are counted where they happen; store-derived ones (backlog, runs, spool) are
read at scrape time, so they are right whichever process (API or worker) did the work."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from service.store import episodes as episode_store
from service.store import runs as run_store

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

    def watch(self, *, engine, recorder, session_factory) -> None:
        """Gauges and run statistics read when Prometheus scrapes."""
        self.registry.register(_StateCollector(engine, recorder, session_factory))


class _StateCollector:
    def __init__(self, engine, recorder, session_factory):
        self.engine, self.recorder, self.session_factory = engine, recorder, session_factory

    def describe(self):
        return []

    def collect(self):
        queue = GaugeMetricFamily("reverie_queue_depth", "Requests waiting for the engine.")
        queue.add_metric([], self.engine.queue_depth)
        yield queue
        spool = GaugeMetricFamily("reverie_spool_depth", "Episode records waiting in the local spool.")
        spool.add_metric([], self.recorder.spool.depth())
        yield spool
        rejected = GaugeMetricFamily("reverie_spool_rejected", "Episode records the store refused, kept in rejected.jsonl.")
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
            for entry in episode_store.backlog(session=session):
                backlog.add_metric([entry.namespace], entry.episodes)
            finished = run_store.finished_run_times(session=session)
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
