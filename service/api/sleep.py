"""`POST /sleep`, `GET /sleep/{run_id}` and `POST /sleep/{run_id}/cancel` (admin key): fall asleep now,
watch the run, stop it."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from service.api.deps import AdminDep, LivenessDep, SessionDep, WorkerWakeDep
from service.api.schemas import RunOut, SleepRequest
from service.errors import ConflictError, NotFoundError
from service.serving.protocol import ErrorResponse
from service.store import episodes as episode_store
from service.store import runs as run_store

router = APIRouter(tags=["sleep"], responses={401: {"model": ErrorResponse}})


@router.post(
    "/sleep", status_code=202, response_model=RunOut,
    responses={200: {"model": RunOut}, 404: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)
def start_sleep(
    _admin: AdminDep,
    session: SessionDep,
    liveness: LivenessDep,
    wake_worker: WorkerWakeDep,
    body: SleepRequest | None = Body(default=None),
) -> JSONResponse:
    """Queue a sleep run for the namespace (202), or return the one already queued or running (200).
    A namespace without episodes is refused (404 `namespace_not_found`); one whose episodes are all
    learned already gets a run that ends `cancelled`, "nothing to consolidate", without training."""
    namespace = (body or SleepRequest()).namespace
    if not episode_store.has_episodes(session=session, namespace=namespace):
        raise NotFoundError(
            f"The namespace {namespace!r} has no episodes: nothing to learn.", param="namespace", code="namespace_not_found"
        )
    run, created = run_store.enqueue_run(session=session, namespace=namespace, trigger="manual")
    if created and wake_worker is not None:
        wake_worker()
    return JSONResponse(RunOut.of(run, liveness).model_dump(mode="json"), status_code=202 if created else 200)


@router.get("/sleep/{run_id}", response_model=RunOut, responses={404: {"model": ErrorResponse}})
def get_sleep(_admin: AdminDep, session: SessionDep, liveness: LivenessDep, run_id: uuid.UUID) -> RunOut:
    run = run_store.get_run(session=session, run_id=run_id)
    if run is None:
        raise NotFoundError(f"No sleep run {run_id}.", param="run_id")
    return RunOut.of(run, liveness)


@router.post(
    "/sleep/{run_id}/cancel",
    response_model=RunOut,
    responses={404: {"model": ErrorResponse}, 409: {"model": ErrorResponse}},
)
def cancel_sleep(_admin: AdminDep, session: SessionDep, liveness: LivenessDep, run_id: uuid.UUID) -> RunOut:
    """Cancel a queued or running run: its worker stops at its next progress point and publishes
    nothing; the run's episodes stay in the backlog. 409 for a run already finished."""
    try:
        run = run_store.cancel_run(session=session, run_id=run_id)
    except LookupError as exc:
        raise NotFoundError(f"No sleep run {run_id}.", param="run_id") from exc
    except ValueError as exc:
        raise ConflictError(f"Sleep run {run_id} already finished: {run_store.get_run(session=session, run_id=run_id).state}.",
                            param="run_id", code="run_finished") from exc
    return RunOut.of(run, liveness)
