"""FastAPI dependencies as `Annotated` aliases, so route signatures stay short."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from service import auth
from service.chat import ChatService
from service.config import Settings
from service.engines.base import Engine


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


def check_admin(settings: SettingsDep, authorization: Annotated[str | None, Header()] = None) -> None:
    auth.require_admin(settings, authorization)


NamespaceDep = Annotated[str, Depends(get_namespace)]
AdminDep = Annotated[None, Depends(check_admin)]
