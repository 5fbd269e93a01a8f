"""The sleep worker: claim a run, consolidate its namespace's new episodes, gate, publish, record.

    reverie worker          # a separate process (a GPU machine in production)
    reverie serve           # the embedded default runs one inside the API process

A run is claimed with a lease (heartbeats from a side thread) and a fencing epoch. The adapter folder
is published atomically before the one transaction that records the adapter, its lineage and marks
the episodes consolidated, so no episode is ever consolidated without a published adapter; with an
object store (REVERIE_ADAPTER_STORE) the folder is uploaded before that transaction too, so no host
sees an adapter it cannot fetch. A worker killed mid-run leaves a run whose lease expires; the next
worker retakes it and runs it again.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from service.adapter_check import check_adapter
from service.object_store import AdapterObjectStore, adapter_object_store, local_adapter_folder
from service.sleep.adapter_folders import publish_folder
from service.sleep.consolidator import TrainerConsolidator
from service.sleep.job import Consolidator, SleepJob
from service.store import adapters as adapter_store
from service.store import runs as run_store
from service.store import workers as worker_store
from service.store.models import Adapter, RunState, SleepRun

log = logging.getLogger(__name__)


class _Lease:
    """Renews a run's lease from a side thread and carries the latest progress with each heartbeat."""

    def __init__(
        self, session_factory: sessionmaker[Session], run: SleepRun, interval_s: float, progress_interval_s: float = 0.5,
        owner: str | None = None,
    ):
        self.session_factory = session_factory
        self.owner = owner
        self.run_id, self.epoch = run.id, run.epoch
        self.interval_s = interval_s
        self.progress_interval_s = progress_interval_s
        self._last_beat = 0.0
        self.progress: dict = {}
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name=f"lease-{run.id}", daemon=True)

    def __enter__(self) -> _Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def report(self, **progress) -> None:
        """Record progress; written at most every `progress_interval_s` (and with every heartbeat)."""
        with self._lock:
            self.progress.update(progress)
        if time.monotonic() - self._last_beat >= self.progress_interval_s:
            self.beat()
        if self.lost.is_set():
            raise run_store.LeaseLostError(f"run {self.run_id} was taken over; stopping")

    def beat(self) -> None:
        with self._lock:
            progress = dict(self.progress)
            self._last_beat = time.monotonic()
        try:
            with self.session_factory() as session:
                run_store.heartbeat(session=session, run_id=self.run_id, epoch=self.epoch, **progress)
        except run_store.LeaseLostError:
            self.lost.set()
        except Exception as exc:  # the database blinked: the lease lasts several intervals
            log.warning("heartbeat for run %s failed: %s", self.run_id, exc)
        if self.owner is not None:
            _beat_worker(self.session_factory, self.owner, None if self.lost.is_set() else self.run_id)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.beat()


def consumed_episodes(handed: list[uuid.UUID], consumed: list[str] | None) -> list[uuid.UUID]:
    """The episodes of `handed` that a night consumed (`SleepOutcome.episode_ids`; None: all of them)."""
    if consumed is None:
        return handed
    ids = set(consumed)
    return [i for i in handed if str(i) in ids]


def _reply(episode) -> dict:
    """The reply the client got as the episode's last message: its text, and its tool calls if it made any."""
    reply = {"role": "assistant", "content": episode.response or ""}
    return reply | {"tool_calls": episode.tool_calls} if episode.tool_calls else reply


def _beat_worker(session_factory: sessionmaker[Session], owner: str, run_id: uuid.UUID | None) -> None:
    """The worker's own heartbeat row (dashboard, /readyz); a failed write only makes it look older."""
    try:
        with session_factory() as session:
            worker_store.beat(session=session, worker_id=owner, run_id=run_id)
    except Exception as exc:
        log.warning("worker heartbeat failed: %s", exc)


# Phases whose length nobody knows: they report no total, so no "1/1 100 %" while the model loads.
_UNCOUNTED_PHASES = frozenset({"setup", "evaluate", "save", "publish"})


class Worker:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        consolidator: Consolidator,
        base_model: Callable[[], Path],
        adapters_dir: Path,
        lease_s: float = 60.0,
        max_episodes: int = 200,
        max_per_conversation: int = 0,
        include_flagged: bool = False,
        max_rank: int = 64,
        around_training: Callable[[], AbstractContextManager] = nullcontext,
        owner: str | None = None,
        on_published: Callable[[Adapter], None] | None = None,
        object_store: AdapterObjectStore | None = None,
    ):
        self.session_factory = session_factory
        self.consolidator = consolidator
        self.base_model = base_model
        self.adapters_dir = Path(adapters_dir)
        self.lease_s = lease_s
        self.max_episodes = max_episodes
        self.max_per_conversation = max_per_conversation
        self.include_flagged = include_flagged
        self.max_rank = max_rank
        self.around_training = around_training
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.on_published = on_published
        self.object_store = object_store
        self.polled_at: float | None = None  # last look for a run (Unix time), and the run held: /metrics
        self.running: uuid.UUID | None = None

    def run_once(self) -> SleepRun | None:
        """Claim and process one run; returns it in its final state, or None when there was none."""
        self.polled_at = time.time()
        with self.session_factory() as session:
            run = run_store.claim_run(session=session, owner=self.owner, lease_s=self.lease_s)
        if run is None:
            return None
        log.info("run %s (%s, epoch %d) claimed by %s", run.id, run.namespace, run.epoch, self.owner)
        self.running = run.id
        try:
            self._process(run)
        except run_store.LeaseLostError as exc:
            with self.session_factory() as session:
                now = run_store.get_run(session=session, run_id=run.id)
            if now is not None and now.state == RunState.CANCELLED:
                log.info("run %s cancelled (%s); nothing published", run.id, now.error)
            else:
                log.warning("%s", exc)
        except Exception as exc:
            log.exception("run %s failed", run.id)
            self._fail(run, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}")
        finally:
            self.running = None
        with self.session_factory() as session:
            return run_store.get_run(session=session, run_id=run.id)

    def run_forever(self, *, poll_s: float = 2.0, stop: threading.Event | None = None, wake: threading.Event | None = None) -> None:
        """Claim and process runs until `stop` is set; `wake` cuts a poll short (a run was just queued)."""
        stop = stop or threading.Event()
        wake = wake or threading.Event()
        while not stop.is_set():
            _beat_worker(self.session_factory, self.owner, None)
            try:
                if self.run_once() is not None:
                    continue
            except Exception:
                log.exception("worker loop error; retrying")
            wake.wait(min(poll_s, self.lease_s / 4))
            wake.clear()
        try:
            with self.session_factory() as session:
                worker_store.stopped(session=session, worker_id=self.owner)
        except Exception as exc:
            log.warning("could not remove worker %s's heartbeat: %s", self.owner, exc)

    # -- one run -------------------------------------------------------------------------------------
    def _process(self, run: SleepRun) -> None:
        with self.session_factory() as session:
            episodes = adapter_store.consolidation_batch(
                session=session,
                namespace=run.namespace,
                limit=self.max_episodes,
                include_flagged=self.include_flagged,
                per_conversation=self.max_per_conversation,
            )
            current = adapter_store.active_adapter(session=session, namespace=run.namespace)
            episode_ids = [episode.id for episode in episodes]
            # An episode is the whole interaction: the request's messages and the reply the client got,
            # its tool calls too (the trainer shows a call to the teacher but never trains on one).
            material = [{"id": str(e.id), "messages": [*e.messages, _reply(e)]} for e in episodes]
            current_recorded = current.path if current else None
        if not episodes:
            with self.session_factory() as session:
                run_store.finish_run(
                    session=session, run_id=run.id, epoch=run.epoch, state=RunState.CANCELLED,
                    metrics={"episodes": 0}, error="nothing to consolidate: no new complete episodes",
                )
                session.commit()
            return

        workdir = Path(tempfile.mkdtemp(prefix=f"reverie-run-{run.id.hex[:8]}-"))
        try:
            with _Lease(self.session_factory, run, interval_s=max(self.lease_s / 4, 0.5), owner=self.owner) as lease:
                lease.report(phase="setup", step=0, total=0)

                def progress(phase: str, step: int, total: int, loss: float | None = None) -> None:
                    uncounted = phase in _UNCOUNTED_PHASES
                    values = {"phase": phase, "step": 0 if uncounted else step, "total": 0 if uncounted else total}
                    if phase in ("evaluate", "gate"):
                        values["state"] = RunState.EVALUATING
                    lease.report(**values)

                job = SleepJob(
                    run_id=run.id,
                    namespace=run.namespace,
                    episodes=material,
                    base_model=self.base_model(),
                    current_adapter=local_adapter_folder(current_recorded, self.object_store),
                    workdir=workdir,
                )
                with self.around_training():
                    outcome = self.consolidator(job, progress)
                lease.report(state=RunState.EVALUATING, phase="publish", step=0, total=0)
                lease.beat()
                if lease.lost.is_set():
                    raise run_store.LeaseLostError(f"run {run.id} was taken over before publishing")
                consumed = consumed_episodes(episode_ids, outcome.episode_ids)
                metrics = {**outcome.metrics, "episodes": len(consumed)}
                # A broken candidate fails the run here, before anything is published or served.
                check_adapter(outcome.adapter_dir, base_model=job.base_model, max_rank=self.max_rank)
                recorded = self._publish(run, outcome.adapter_dir, accepted=outcome.accepted)
                with self.session_factory() as session:
                    if outcome.accepted:
                        adapter = adapter_store.publish(
                            session=session, run_id=run.id, epoch=run.epoch, namespace=run.namespace,
                            path=recorded, rank=outcome.rank, experts=outcome.experts, metrics=metrics,
                            episode_ids=consumed,
                        )
                    else:
                        adapter = adapter_store.record_rejected(
                            session=session, run_id=run.id, epoch=run.epoch, namespace=run.namespace,
                            path=recorded, rank=outcome.rank, experts=outcome.experts, metrics=metrics,
                        )
            log.info("run %s %s adapter v%d", run.id, "published" if outcome.accepted else "rejected", adapter.version)
            if outcome.accepted and self.on_published is not None:
                try:
                    self.on_published(adapter)
                except Exception:
                    log.exception("activating adapter v%d failed; the API's adapter sync retries", adapter.version)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _publish(self, run: SleepRun, adapter_dir: Path, *, accepted: bool) -> str:
        """Publish the candidate here, atomically, and upload a served one to the object store; returns
        the path to record. Recorded only after this returns, so no host sees an adapter it cannot fetch."""
        final = publish_folder(adapter_dir, self.adapters_dir / run.namespace / f"{run.id.hex}-e{run.epoch}")
        if not accepted or self.object_store is None:
            return str(final)  # a rejected candidate is never served: it stays on this host
        return self.object_store.upload(final, run.namespace)

    def _fail(self, run: SleepRun, error: str) -> None:
        try:
            with self.session_factory() as session:
                run_store.finish_run(session=session, run_id=run.id, epoch=run.epoch, state=RunState.FAILED, error=error)
                session.commit()
        except run_store.LeaseLostError:
            pass
        except Exception:
            log.exception("could not record the failure of run %s", run.id)


class EmbeddedWorker:
    """The worker on a thread of `reverie serve` (the embedded default)."""

    def __init__(self, worker: Worker, poll_s: float = 2.0):
        self.worker = worker
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sleep-worker", daemon=True)

    def _run(self) -> None:
        self.worker.run_forever(poll_s=self.poll_s, stop=self._stop, wake=self._wake)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Ask the loop to stop; a run in progress finishes or is retaken after its lease expires."""
        self._stop.set()
        self._wake.set()


def build_worker(settings, session_factory: sessionmaker[Session], on_published=None) -> Worker:
    """A worker for these settings: the trainer's recipe on the configured model."""
    from service.modelprep import prepare_model
    from service.sleep.gpu_share import TrainerFit, VLLMSleeper, gpu_night
    from service.sleep.vllm_generation import vllm_night_generation

    def base_model() -> Path:
        return prepare_model(settings)

    # One GPU: vLLM serves beside the night unless it is put to sleep; either way the night checks first
    # that the trainer fits in the GPU memory left free (docs/deploy.md, "One GPU: serve while training").
    fit = TrainerFit(base_model, settings.sleep_config, settings.train_gpu_memory_gib)
    sleeper = VLLMSleeper(settings.vllm_url, api_key=settings.vllm_api_key) if settings.vllm_sleep_during_training else None
    # The night's text from the serving vLLM, or from transformers' generate here (REVERIE_NIGHT_GENERATION).
    generation = vllm_night_generation(settings) if settings.resolved_night_generation == "vllm" else None
    return Worker(
        session_factory=session_factory,
        around_training=lambda: gpu_night(fit, sleeper),
        consolidator=TrainerConsolidator(settings.sleep_config, generation=generation),
        base_model=base_model,
        adapters_dir=settings.adapters_dir,
        lease_s=settings.worker_lease_s,
        max_episodes=settings.sleep_max_episodes,
        max_per_conversation=settings.sleep_max_per_conversation,
        include_flagged=settings.sleep_include_flagged,
        max_rank=settings.max_lora_rank,
        on_published=on_published,
        object_store=adapter_object_store(settings),
    )
