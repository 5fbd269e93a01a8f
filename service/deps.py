"""FastAPI dependencies as `Annotated` aliases, so route signatures stay short."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from service import admin_session, auth
from service.chat import ChatService
from service.config import Settings
from service.engines.base import Engine
from service.errors import PermissionDeniedError


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_chat_service(request: Request) -> ChatService:
    return request.app.state.chat


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.session_factory() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ChatDep = Annotated[ChatService, Depends(get_chat_service)]
SessionDep = Annotated[Session, Depends(get_session)]


def get_namespace(settings: SettingsDep, authorization: Annotated[str | None, Header()] = None) -> str:
    return auth.namespace_for(settings, authorization)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def check_admin(
    request: Request, settings: SettingsDep, authorization: Annotated[str | None, Header()] = None
) -> None:
    """The admin key as a Bearer token, or a dashboard session cookie (plus its CSRF token in the
    `X-CSRF-Token` header for anything but GET/HEAD/OPTIONS). A bearer token that is not the admin
    key (a user API key) is refused even beside a valid cookie."""
    if authorization is not None or not settings.admin_key:
        auth.require_admin(settings, authorization)
        return
    session = admin_session.from_request(request)
    if session is None:
        auth.require_admin(settings, authorization)  # raises: no key, no valid session
    if request.method not in SAFE_METHODS and not admin_session.csrf_ok(
        session, request.headers.get(admin_session.CSRF_HEADER)
    ):
        raise PermissionDeniedError("Missing or wrong CSRF token: send the page's token in the X-CSRF-Token header.")


NamespaceDep = Annotated[str, Depends(get_namespace)]
AdminDep = Annotated[None, Depends(check_admin)]
