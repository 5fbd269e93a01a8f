"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service.api.deps import EngineDep, RecorderDep, SessionFactoryDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(engine: EngineDep, sessions: SessionFactoryDep, recorder: RecorderDep) -> JSONResponse:
    """Ready when the engine has loaded and the store answers (a spooling store still serves)."""
    engine_ready = engine.ready
    try:
        with sessions() as session:
            session.execute(text("SELECT 1"))
        store = "ok"
    except Exception:
        store = "spooling" if recorder.spool_writable() else "unavailable"
    ready = engine_ready and store != "unavailable"
    body = {"status": "ready" if ready else "not ready", "engine": "ready" if engine_ready else "loading", "store": store}
    return JSONResponse(body, status_code=200 if ready else 503)
