"""The app factory: settings, store, recorder, engine, routers and the one error format."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import __version__
from service.api import admin, dashboard, health, openai, pages, sleep
from service.api import metrics as metrics_api
from service.object_store import adapter_object_store
from service.serving.adapter_sync import AdapterSync
from service.serving.chat import ChatService
from service.config import Settings
from service.serving.engines import build_engine
from service.serving.engines.base import Engine
from service.errors import ReverieError, StoreUnavailableError
from service.serving.protocol import ErrorDetail, ErrorResponse
from service.serving.auth import StoreKeys
from service.serving.limits import FailureThrottle, KeyLimiter, RequestLimits, StoreBuckets, retry_after_headers
from service.logs import RequestContext
from service.telemetry import Telemetry
from service.serving.recording import Recorder, store_is_down
from service.sleep.scheduler import NightScheduler
from service.store.db import make_engine, make_reading_sessionmaker, make_sessionmaker, private_dir
from service.store.spool import Spool
from service.sleep.worker import EmbeddedWorker, build_worker

log = logging.getLogger(__name__)


def error_response(status: int, message: str, error_type: str, *, param=None, code=None) -> JSONResponse:
    body = ErrorResponse(error=ErrorDetail(message=message, type=error_type, param=param, code=code))
    return JSONResponse(body.model_dump(), status_code=status)


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    first = exc.errors()[0] if exc.errors() else {}
    location = [str(part) for part in first.get("loc", ()) if part != "body"]
    if first.get("type") == "json_invalid":
        return "The request body is not valid JSON.", None
    param = ".".join(location) or None
    message = first.get("msg", "Invalid request.")
    return (f"Invalid value for '{param}': {message}" if param else message), param


class BodySizeLimit:
    """413 for bodies over the limit, by Content-Length or, for a chunked body, by reading it first
    (at most `max_bytes`, then replayed to the app): the app never sees a body it would have to cut."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_large = error_response(
            413, f"The request body exceeds {self.max_bytes} bytes.", "invalid_request_error", code="request_too_large"
        )
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None:
            if length.isdigit() and int(length) > self.max_bytes:
                return await too_large(scope, receive, send)
            return await self.app(scope, receive, send)
        chunks, received = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            received += len(chunks[-1])
            if received > self.max_bytes:
                return await too_large(scope, receive, send)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


async def _start_engine(engine: Engine) -> None:
    try:
        await engine.start()
        log.info("engine ready")
    except Exception:
        log.exception("the engine failed to start; chat requests get 503")


def http_routes(routes) -> list:
    """Every HTTP route, through included routers (FastAPI keeps them nested)."""
    found = []
    for route in routes:
        if hasattr(route, "original_router"):
            found += http_routes(route.original_router.routes)
        elif getattr(route, "methods", None):
            found.append(route)
    return found


def _allowed_methods(app: FastAPI, scope) -> list[str]:
    """Every method of every route on this path (a route whose path matches answers PARTIAL)."""
    methods: set[str] = set()
    for route in http_routes(app.router.routes):
        match, _ = route.matches(scope)
        if match != Match.NONE:
            methods |= route.methods
    return sorted(methods)


def _openapi_with_openai_errors(app: FastAPI) -> dict:
    """FastAPI documents validation errors as 422 with its own body; Reverie answers 400 with an
    OpenAI error body, like OpenAI. Make the schema say what the server does."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    schema.setdefault("components", {}).setdefault("schemas", {})["ErrorResponse"] = ErrorResponse.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    schema["components"]["schemas"].update(
        {name: sub for name, sub in ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}").get("$defs", {}).items()}
    )
    schema["components"]["schemas"]["ErrorResponse"].pop("$defs", None)
    for name in ("HTTPValidationError", "ValidationError"):
        schema["components"]["schemas"].pop(name, None)
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if operation.get("parameters") or operation.get("requestBody"):
                responses.setdefault("400", {"description": "Invalid request", "content": {"application/json": {"schema": error_ref}}})
    app.openapi_schema = schema
    return schema


def _swap_now(adapter_sync: AdapterSync):
    """From the worker thread: make this process's engine serve a just-published adapter now."""
    loop = asyncio.get_running_loop()

    def swap(_adapter) -> None:
        asyncio.run_coroutine_threadsafe(adapter_sync.sync_once(), loop).result(timeout=600)

    return swap


def _lifespan(settings: Settings, engine: Engine | None, telemetry: Telemetry):
    """Startup and shutdown: store, recorder, engine, chat, adapter sync, scheduler and embedded worker,
    each on `app.state` for `service.api.deps`."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        private_dir(settings.data_dir, tighten=True)
        db = make_engine(settings.resolved_database_url)
        app.state.session_factory = session_factory = make_sessionmaker(db)
        app.state.recorder = recorder = Recorder(
            app.state.session_factory, Spool(settings.resolved_spool_dir), pending_timeout_s=settings.request_timeout_s
        )
        recorder.start()
        app.state.engine = model_engine = engine or build_engine(settings)
        telemetry.watch(engine=model_engine, recorder=recorder, session_factory=session_factory, lease_s=settings.worker_lease_s)
        app.state.chat = ChatService(
            telemetry=telemetry,
            engine=model_engine,
            recorder=recorder,
            model_name=settings.model_name,
            default_max_tokens=settings.default_max_tokens,
            limits=RequestLimits(
                max_messages=settings.max_messages,
                max_chars=settings.max_chars,
                max_completion_tokens=settings.max_completion_tokens,
                max_choices=settings.max_choices,
            ),
            limiter=KeyLimiter(settings.rate_limit_per_minute, settings.max_inflight_per_key,
                               buckets=StoreBuckets(session_factory, settings.rate_limit_per_minute)),
        )
        app.state.adapter_sync = adapter_sync = AdapterSync(
            model_engine, app.state.session_factory, object_store=adapter_object_store(settings),
            on_swap=lambda namespace, _name: telemetry.adapter_swaps.labels(namespace=namespace).inc(),
        )
        app.state.api_keys = api_keys = StoreKeys(make_reading_sessionmaker(db))
        if settings.open_access and not api_keys.has_keys():
            log.warning("no API keys configured: serving everyone as namespace 'default' (bind to loopback only)")

        async def start_engine_then_sync() -> None:
            await _start_engine(model_engine)
            await adapter_sync.run(settings.adapter_sync_interval_s)

        tasks = [
            asyncio.create_task(start_engine_then_sync(), name="engine"),
            asyncio.create_task(recorder.run_relay(settings.spool_drain_interval_s), name="spool-relay"),
        ]
        scheduler = None
        if settings.scheduler:
            scheduler = NightScheduler(
                session_factory=app.state.session_factory,
                db=db,
                cron=settings.sleep_cron,
                tz=settings.sleep_timezone,
                backlog_threshold=settings.sleep_backlog_episodes,
            )
            scheduler.start()
        app.state.scheduler = scheduler
        worker = None
        if settings.embedded_worker:
            worker = EmbeddedWorker(
                build_worker(settings, app.state.session_factory, on_published=_swap_now(adapter_sync))
            )
            worker.start()
            app.state.wake_worker = worker.wake
        try:
            yield
        finally:
            if worker is not None:
                worker.stop()
            if scheduler is not None:
                scheduler.stop()
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await model_engine.stop()
            recorder.close()
            db.dispose()

    return lifespan


def _install_error_handlers(app: FastAPI) -> None:
    """One error format: every error leaves as an OpenAI-shaped body with its HTTP status."""

    @app.exception_handler(ReverieError)
    async def _reverie_error(_request: Request, exc: ReverieError) -> JSONResponse:
        if exc.status_code >= 500:
            log.error("%s (%s): %s", exc.code or exc.error_type, exc.status_code, exc.message)
        response = error_response(exc.status_code, exc.client_message, exc.error_type, param=exc.param, code=exc.code)
        retry_after = getattr(exc, "retry_after_s", None)
        if retry_after is not None:
            response.headers.update(retry_after_headers(retry_after))
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        # A client that keeps sending a field Reverie refuses shows up here, not only in its own errors.
        log.info("refused %s %s: %s", request.method, request.url.path, message)
        return error_response(400, message, "invalid_request_error", param=param)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error_type = "invalid_request_error" if exc.status_code < 500 else "server_error"
        response = error_response(exc.status_code, str(exc.detail), error_type)
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:  # Starlette names only the first route's methods when several share a path
            response.headers["Allow"] = ", ".join(_allowed_methods(app, _request.scope))
        return response

    @app.exception_handler(SQLAlchemyError)
    async def _store_error(_request: Request, exc: SQLAlchemyError) -> JSONResponse:
        if not store_is_down(exc):
            return await _unexpected(_request, exc)
        log.warning("store unavailable: %s", str(exc).splitlines()[0])
        error = StoreUnavailableError("the store is unavailable")
        return error_response(503, error.client_message, error.error_type, code=error.code)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "Internal server error.", "server_error")


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    settings = settings or Settings()
    telemetry = Telemetry()
    app = FastAPI(title="Reverie", version=__version__, lifespan=_lifespan(settings, engine, telemetry))
    app.state.settings = settings
    app.state.telemetry = telemetry
    app.state.started_at = int(time.time())
    app.state.auth_throttle = FailureThrottle(settings.auth_failures_per_minute)
    app.include_router(openai.router)
    app.include_router(admin.router)
    app.include_router(sleep.router)
    app.include_router(metrics_api.router)
    app.include_router(health.router)
    app.include_router(dashboard.router)
    app.mount("/admin/static", StaticFiles(directory=pages.STATIC_DIR), name="dashboard-static")

    _install_error_handlers(app)
    app.openapi = lambda: _openapi_with_openai_errors(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)

    def count_response(path: str, status: int) -> None:
        if path.startswith("/v1/"):
            telemetry.requests.labels(status=str(status)).inc()

    app.add_middleware(RequestContext, on_response=count_response)
    return app
