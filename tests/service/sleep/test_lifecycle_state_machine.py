"""A hypothesis state machine over the episode lifecycle: record, store outage (spool), drain,
consolidate, forget. Invariants after every step: nothing acknowledged is lost or duplicated, nothing is
consolidated without a published adapter, nothing forgotten survives in the store or the spool."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import select

from service.errors import StoreUnavailableError
from service.sleep.forgetting import forget
from service.serving.recording import Recorder
from service.store import adapters as adapter_store
from service.store import runs as run_store
from service.store.db import make_engine, make_sessionmaker, upgrade
from service.store.episodes import EpisodeRecord
from service.store.models import Adapter, AdapterEpisode, Episode, SleepRun
from service.store.spool import Spool
from tests.factories import completed, make_record

NAMESPACES = st.sampled_from(["a", "b"])
# A database that refuses connections: a real outage, reached in microseconds.
DOWN_URL = "postgresql://root@127.0.0.1:1/down"


class EpisodeLifecycle(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="reverie-sm-"))
        url = f"sqlite:///{self.dir / 'store.db'}"
        upgrade(url)
        self.db = make_engine(url)
        self.up = make_sessionmaker(self.db)
        self.down_engine = make_engine(DOWN_URL)
        self.down = make_sessionmaker(self.down_engine)
        self.spool = Spool(self.dir / "spool")
        self.recorder = Recorder(self.up, self.spool)
        self.recorder.start()
        self.acknowledged: dict[uuid.UUID, str] = {}  # id -> namespace: complete and told to the client
        self.pending: dict[uuid.UUID, EpisodeRecord] = {}
        self.forgotten: set[uuid.UUID] = set()
        self.store_down = False

    def teardown(self):
        self.recorder.close()
        self.db.dispose()
        self.down_engine.dispose()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- the world ------------------------------------------------------------------------------
    @rule(namespace=NAMESPACES)
    def begin(self, namespace):
        record = make_record(namespace=namespace)
        try:
            self.recorder.record_sync(record)
        except StoreUnavailableError:
            return
        self.pending[record.id] = record

    @precondition(lambda self: self.pending)
    @rule(data=st.data(), outcome=st.sampled_from(["complete", "complete", "aborted"]))
    def finish(self, data, outcome):
        record = self.pending.pop(data.draw(st.sampled_from(sorted(self.pending))))
        if outcome == "complete":
            completed(record)
        else:
            record.status = "aborted"
        self.recorder.record_sync(record)
        if outcome == "complete" and record.id not in self.forgotten:
            self.acknowledged[record.id] = record.namespace

    @rule()
    def store_goes_down(self):
        self.store_down = True
        self.recorder.session_factory = self.down
        self.recorder._store_down_until = 0.0  # try it (and fail) right away

    @rule()
    def store_comes_back(self):
        self.store_down = False
        self.recorder.session_factory = self.up

    @precondition(lambda self: not self.store_down)
    @rule()
    def drain(self):
        self.recorder._store_down_until = 0.0
        self.recorder.drain_spool()

    @precondition(lambda self: not self.store_down)
    @rule(namespace=NAMESPACES)
    def consolidate(self, namespace):
        with self.up() as session:
            run_store.enqueue_run(session=session, namespace=namespace, trigger="manual")
            run = run_store.claim_run(session=session, owner="sm", lease_s=60)
        if run is None:
            return
        with self.up() as session:
            batch = [e.id for e in adapter_store.consolidation_batch(session=session, namespace=run.namespace, limit=50)]
        with self.up() as session:
            adapter_store.publish(session=session, run_id=run.id, epoch=run.epoch, namespace=run.namespace,
                                  path=f"/adapters/{run.id}", rank=8, experts=1, metrics={}, episode_ids=batch)

    @precondition(lambda self: not self.store_down and self.acknowledged)
    @rule(data=st.data())
    def forget_one(self, data):
        episode_id = data.draw(st.sampled_from(sorted(self.acknowledged)))
        namespace = self.acknowledged.pop(episode_id)
        forget(session_factory=self.up, spool=self.spool, namespace=namespace, episode_ids=[episode_id])
        self.forgotten.add(episode_id)

    # -- what must always hold ------------------------------------------------------------------
    def _stored(self) -> dict[uuid.UUID, Episode]:
        with self.up() as session:
            return {e.id: e for e in session.scalars(select(Episode))}

    def _spooled(self) -> set[uuid.UUID]:
        received: list[EpisodeRecord] = []
        for path in sorted(self.spool.directory.glob("*.jsonl")) if self.spool.directory.exists() else []:
            received += Spool._read(path)
        return {r.id for r in received}

    @invariant()
    def nothing_acknowledged_is_lost(self):
        stored, spooled = self._stored(), self._spooled()
        for episode_id in self.acknowledged:
            assert episode_id in stored or episode_id in spooled, episode_id

    @invariant()
    def nothing_forgotten_survives(self):
        stored, spooled = self._stored(), self._spooled()
        for episode_id in self.forgotten:
            assert episode_id not in spooled
            row = stored.get(episode_id)
            assert row is None or (row.deleted_at is not None and row.response is None and row.messages == [])

    @invariant()
    def consolidated_only_with_a_published_adapter(self):
        with self.up() as session:
            for episode in session.scalars(select(Episode).where(Episode.consolidated_by.is_not(None))):
                run = session.get(SleepRun, episode.consolidated_by)
                assert run is not None and run.state == "published"
                adapter = session.scalar(select(Adapter).where(Adapter.run_id == run.id))
                assert adapter is not None
                assert session.get(AdapterEpisode, (adapter.id, episode.id)) is not None


TestEpisodeLifecycle = EpisodeLifecycle.TestCase
TestEpisodeLifecycle.settings = settings(
    max_examples=40, stateful_step_count=30, deadline=None, suppress_health_check=list(HealthCheck)
)
