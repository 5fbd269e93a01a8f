"""How a dashboard page is made: the templates and their common filters, the signed-in session a page
reads, the security headers every page carries, and the redirect to sign in. The routers that serve
pages (`dashboard.py`) share this instead of importing each other."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from service import __version__
from service.api import admin_session
from service.api.admin_session import AdminSession
from service.api.deps import SessionFactoryDep, SettingsDep
from service.store.episodes import as_utc

HERE = Path(__file__).resolve().parent.parent
STATIC_DIR = HERE / "static"
templates = Jinja2Templates(directory=str(HERE / "templates"))

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _page_session(request: Request, settings: SettingsDep, sessions: SessionFactoryDep) -> AdminSession | None:
    return admin_session.from_request(request, settings, sessions)


PageSession = Annotated[AdminSession | None, Depends(_page_session)]


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return "—"
    moment = as_utc(moment)
    seconds = ((now or datetime.now(timezone.utc)) - moment).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            text = f"{seconds / size:.0f} {unit}"
            break
    else:
        text = f"{seconds:.0f} s"
    return f"in {text}" if future else f"{text} ago"


def when(moment: datetime | None) -> str:
    return as_utc(moment).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None:
        return "—"
    seconds = ((as_utc(end) if end else datetime.now(timezone.utc)) - as_utc(start)).total_seconds()
    text = f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
    return text if end else text + " so far"


def number(value, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if value == 0 or abs(value) >= 10 ** -digits else f"{value:.2e}"
    return str(value)


templates.env.filters.update(ago=ago, when=when, number=number)
templates.env.globals.update(version=__version__, duration=duration)


def render(request: Request, name: str, admin: AdminSession | None, status_code: int = 200, **context) -> HTMLResponse:
    context.update(request=request, admin=admin, csrf=admin.csrf if admin else "")
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


def to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/admin/login?next={quote(target, safe='')}", status_code=303)
