"""`GET /metrics` in Prometheus' text format (admin key, unless REVERIE_METRICS_PUBLIC)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.serving import auth
from service.api.deps import SettingsDep, TelemetryDep

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response)
def metrics(
    settings: SettingsDep, telemetry: TelemetryDep, authorization: Annotated[str | None, Header()] = None
) -> Response:
    if not settings.metrics_public:
        auth.require_admin(settings, authorization)
    return Response(generate_latest(telemetry.registry), media_type=CONTENT_TYPE_LATEST)
