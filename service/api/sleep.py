"""`POST /sleep` and `GET /sleep/{run_id}` (admin key): fall asleep now, and watch the run."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from service.config import DEFAULT_NAMESPACE
from service.deps import AdminDep, SessionDep
from service.errors import NotFoundError
from service.protocol import ErrorResponse
from service.store import runs as run_store
from service.store.models import SleepRun

router = APIRouter(tags=["sleep"], responses={401: {"model": ErrorResponse}})


class SleepRequest(BaseModel):
    namespace: str = Field(default=DEFAULT_NAMESPACE, min_length=1, max_length=128)


class RunProgress(BaseModel):
    phase: str | None
    step: int
    total: int


class RunOut(BaseModel):
    id: str
    namespace: str
    trigger: str
    state: str
    progress: RunProgress
    metrics: dict | None
    error: str | None
    epoch: int
    lease_owner: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, run: SleepRun) -> RunOut:
        return cls(
            id=str(run.id),
            namespace=run.namespace,
            trigger=run.trigger,
            state=run.state,
            progress=RunProgress(phase=run.phase, step=run.step, total=run.total),
            metrics=run.metrics,
            error=run.error,
            epoch=run.epoch,
            lease_owner=run.lease_owner,
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
        )


@router.post("/sleep", status_code=202, response_model=RunOut, responses={200: {"model": RunOut}})
def start_sleep(
    _admin: AdminDep, session: SessionDep, request: Request, body: SleepRequest | None = Body(default=None)
) -> JSONResponse:
    """Queue a sleep run for the namespace (202), or return the one already queued or running (200)."""
    namespace = (body or SleepRequest()).namespace
    run, created = run_store.enqueue_run(session=session, namespace=namespace, trigger="manual")
    wake = getattr(request.app.state, "wake_worker", None)
    if created and wake is not None:
        wake()
    return JSONResponse(RunOut.of(run).model_dump(mode="json"), status_code=202 if created else 200)


@router.get("/sleep/{run_id}", response_model=RunOut, responses={404: {"model": ErrorResponse}})
def get_sleep(_admin: AdminDep, session: SessionDep, run_id: uuid.UUID) -> RunOut:
    run = run_store.get_run(session=session, run_id=run_id)
    if run is None:
        raise NotFoundError(f"No sleep run {run_id}.", param="run_id")
    return RunOut.of(run)
