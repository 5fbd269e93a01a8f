"""`POST /sleep` and `GET /sleep/{run_id}` (admin key): fall asleep now, and watch the run."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from service.api.deps import AdminDep, SessionDep, WorkerWakeDep
from service.api.schemas import RunOut, SleepRequest
from service.errors import NotFoundError
from service.serving.protocol import ErrorResponse
from service.store import runs as run_store

router = APIRouter(tags=["sleep"], responses={401: {"model": ErrorResponse}})


@router.post("/sleep", status_code=202, response_model=RunOut, responses={200: {"model": RunOut}})
def start_sleep(
    _admin: AdminDep, session: SessionDep, wake_worker: WorkerWakeDep, body: SleepRequest | None = Body(default=None)
) -> JSONResponse:
    """Queue a sleep run for the namespace (202), or return the one already queued or running (200)."""
    namespace = (body or SleepRequest()).namespace
    run, created = run_store.enqueue_run(session=session, namespace=namespace, trigger="manual")
    if created and wake_worker is not None:
        wake_worker()
    return JSONResponse(RunOut.of(run).model_dump(mode="json"), status_code=202 if created else 200)


@router.get("/sleep/{run_id}", response_model=RunOut, responses={404: {"model": ErrorResponse}})
def get_sleep(_admin: AdminDep, session: SessionDep, run_id: uuid.UUID) -> RunOut:
    run = run_store.get_run(session=session, run_id=run_id)
    if run is None:
        raise NotFoundError(f"No sleep run {run_id}.", param="run_id")
    return RunOut.of(run)
