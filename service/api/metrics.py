"""`GET /metrics` in Prometheus' text format (admin key, unless REVERIE_METRICS_PUBLIC)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service import auth
from service.deps import SettingsDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
def metrics(request: Request, settings: SettingsDep, authorization: Annotated[str | None, Header()] = None) -> Response:
    if not settings.metrics_public:
        auth.require_admin(settings, authorization)
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
