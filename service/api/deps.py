"""FastAPI dependencies as `Annotated` aliases, so route signatures stay short.

Everything a router uses from the app (built in `service.app.create_app`) comes through an alias here;
routers never read `app.state` themselves. The getters that only read `app.state` are `async def`:
FastAPI runs a plain `def` dependency in its thread pool, a thread hop on every request's path for
nothing that can block. The ones that may wait on the store (`get_namespace`, `get_session`) stay `def`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session, sessionmaker

from service.api import admin_session
from service.serving import auth
from service.config import Settings
from service.errors import AuthenticationError, PermissionDeniedError
from service.serving.adapter_sync import AdapterSync
from service.serving.chat import ChatService
from service.serving.responses import ResponsesService
from service.serving.engines.base import Engine
from service.serving.limits import FailureThrottle
from service.serving.recording import Recorder
from service.sleep.scheduler import NightScheduler
from service.store import workers as worker_store
from service.telemetry import Telemetry


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_engine(request: Request) -> Engine:
    return request.app.state.engine


async def get_chat_service(request: Request) -> ChatService:
    return request.app.state.chat


async def get_session_factory(request: Request) -> sessionmaker[Session]:
    return request.app.state.session_factory


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.session_factory() as session:
        yield session


async def get_recorder(request: Request) -> Recorder:
    return request.app.state.recorder


async def get_adapter_sync(request: Request) -> AdapterSync:
    return request.app.state.adapter_sync


async def get_scheduler(request: Request) -> NightScheduler | None:
    """This process's night scheduler; None when it runs none (REVERIE_SCHEDULER off)."""
    return getattr(request.app.state, "scheduler", None)


async def get_worker_wake(request: Request) -> Callable[[], None] | None:
    """Cuts the embedded worker's poll short; None without an embedded worker (it polls on its own)."""
    return getattr(request.app.state, "wake_worker", None)


async def get_telemetry(request: Request) -> Telemetry:
    return request.app.state.telemetry


async def get_started_at(request: Request) -> int:
    """When this app was built, in Unix seconds (the `created` of `/v1/models`)."""
    return request.app.state.started_at


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ChatDep = Annotated[ChatService, Depends(get_chat_service)]


async def get_responses_service(chat: ChatDep) -> ResponsesService:
    return ResponsesService(chat)  # stateless: the Responses API on the chat service


ResponsesDep = Annotated[ResponsesService, Depends(get_responses_service)]
SessionFactoryDep = Annotated[sessionmaker[Session], Depends(get_session_factory)]
SessionDep = Annotated[Session, Depends(get_session)]
RecorderDep = Annotated[Recorder, Depends(get_recorder)]
AdapterSyncDep = Annotated[AdapterSync, Depends(get_adapter_sync)]
SchedulerDep = Annotated[NightScheduler | None, Depends(get_scheduler)]
WorkerWakeDep = Annotated[Callable[[], None] | None, Depends(get_worker_wake)]
TelemetryDep = Annotated[Telemetry, Depends(get_telemetry)]
StartedAtDep = Annotated[int, Depends(get_started_at)]


def get_auth_throttle(request: Request) -> FailureThrottle:
    return request.app.state.auth_throttle


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@contextmanager
def throttled(request: Request, presented: bool) -> Iterator[None]:
    """Refuse (429) a client with too many wrong keys; count this attempt if it presented a key and failed."""
    throttle, client = get_auth_throttle(request), client_address(request)
    throttle.check(client)
    try:
        yield
    except AuthenticationError:
        if presented:
            throttle.failed(client)
        raise


def get_api_keys(request: Request) -> auth.StoreKeys:
    return request.app.state.api_keys


def get_namespace(
    request: Request, settings: SettingsDep, authorization: Annotated[str | None, Header()] = None
) -> str:
    """A sync dependency on purpose: FastAPI runs it in a thread, where the store's key lookup may wait."""
    with throttled(request, auth.bearer_token(authorization) is not None):
        return auth.namespace_for(settings, authorization, get_api_keys(request))


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def check_admin(
    request: Request, settings: SettingsDep, sessions: SessionFactoryDep,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """The admin key as a Bearer token, or a dashboard session cookie (plus its CSRF token in the
    `X-CSRF-Token` header for anything but GET/HEAD/OPTIONS). A bearer token that is not the admin
    key (a user API key) is refused even beside a valid cookie."""
    if authorization is not None or not settings.admin_key:
        with throttled(request, auth.bearer_token(authorization) is not None):
            auth.require_admin(settings, authorization)
        return
    session = admin_session.from_request(request, settings, sessions)
    if session is None:
        auth.require_admin(settings, authorization)  # raises: no key, no valid session
    if request.method not in SAFE_METHODS and not admin_session.csrf_ok(
        session, request.headers.get(admin_session.CSRF_HEADER)
    ):
        raise PermissionDeniedError("Missing or wrong CSRF token: send the page's token in the X-CSRF-Token header.")


def get_liveness(session: SessionDep, settings: SettingsDep) -> worker_store.Liveness:
    """The lease and the workers' heartbeats, read once per request: a run's shown state needs them."""
    return worker_store.liveness(session=session, lease_s=settings.worker_lease_s)


LivenessDep = Annotated[worker_store.Liveness, Depends(get_liveness)]
NamespaceDep = Annotated[str, Depends(get_namespace)]
AdminDep = Annotated[None, Depends(check_admin)]
