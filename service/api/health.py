"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready when the engine has loaded and the store answers (a spooling store still serves)."""
    state = request.app.state
    engine_ready = state.engine.ready
    try:
        with state.session_factory() as session:
            session.execute(text("SELECT 1"))
        store = "ok"
    except Exception:
        store = "spooling" if state.recorder.spool_writable() else "unavailable"
    ready = engine_ready and store != "unavailable"
    body = {"status": "ready" if ready else "not ready", "engine": "ready" if engine_ready else "loading", "store": store}
    return JSONResponse(body, status_code=200 if ready else 503)
