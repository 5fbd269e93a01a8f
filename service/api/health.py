"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from service.api.deps import EngineDep, RecorderDep, SessionFactoryDep, SettingsDep
from service.api.schemas import WorkerOut
from service.serving.recording import schema_missing
from service.store import episodes as episode_store
from service.store import workers as worker_store

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(
    engine: EngineDep, sessions: SessionFactoryDep, recorder: RecorderDep, settings: SettingsDep
) -> JSONResponse:
    """Ready when the engine has loaded and the store answers with its tables (a spooling store still
    serves; a database without Reverie's tables spools too, and `store_error` says so). The body
    also lists the sleep workers' heartbeats (informative: no worker does not make the API unready)."""
    engine_ready = engine.ready
    workers: list[dict] | None = None
    body_extra: dict[str, str] = {}
    try:
        with sessions() as session:
            episode_store.probe(session=session)
        store = "ok"
    except Exception as exc:
        store = "spooling" if recorder.spool_writable() else "unavailable"
        if schema_missing(exc):
            body_extra["store_error"] = "the database has no Reverie tables: run `reverie db upgrade`"
    if store == "ok":
        workers = _workers(sessions, settings.worker_lease_s)
    ready = engine_ready and store != "unavailable"
    body = {"status": "ready" if ready else "not ready", "engine": "ready" if engine_ready else "loading", "store": store}
    body.update(body_extra)
    if workers is not None:
        body["workers"] = workers
    return JSONResponse(body, status_code=200 if ready else 503)


def _workers(sessions, lease_s: float) -> list[dict] | None:
    """The sleep workers' heartbeats; None when they cannot be read (the readiness verdict ignores them)."""
    try:
        with sessions() as session:
            liveness = worker_store.liveness(session=session, lease_s=lease_s)
            return [WorkerOut.of(worker, liveness).model_dump(mode="json") for worker in liveness.workers]
    except Exception:
        return None
