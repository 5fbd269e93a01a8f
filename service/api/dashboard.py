"""The admin dashboard at `/admin`: server-rendered pages over the admin API's store functions.

Signed in with the admin key (a session cookie, see `service.api.admin_session`); pages without a
session redirect to the sign-in page. The pages' buttons call the JSON API (`POST /sleep`,
`/admin/api/...`) with the session's CSRF token; `static/dashboard.js` draws the charts and follows
a run's progress live.
"""

from __future__ import annotations

import json

import uuid
from datetime import datetime, timezone
from typing import Annotated
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from service.api import admin_session
from service.api.deps import (
    EngineDep, LivenessDep, SchedulerDep, SessionDep, SessionFactoryDep, SettingsDep, client_address, get_auth_throttle,
)
from service.api.pages import SECURITY_HEADERS, PageSession, number, render, templates, to_login
from service.api.schemas import EpisodeOut, Stats, WorkerOut, check_namespace_filter, check_text, utc_bound
from service.errors import InvalidRequestError
from service.serving.limits import AuthThrottledError, retry_after_headers
from service.store import adapters as adapter_store
from service.store import api_keys as key_store
from service.store import episodes as episode_store
from service.store import runs as run_store
from service.store.models import EpisodeStatus, RunState
from service.store.stats import namespace_overviews

router = APIRouter(prefix="/admin", include_in_schema=False)
PAGE_SIZE = 50


def _content(message: dict, called: dict[str, str] | None = None) -> str:
    """A message's text (multi-part content, OpenAI's list of parts, joined), then the function calls
    an assistant made, one a line; a tool's result says which call it answers, by the function's name
    where `called` (`_call_names`) knows the call."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):
        text = "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    else:
        text = "" if content is None else str(content)
    if not isinstance(message, dict):
        return text
    if message.get("tool_call_id"):
        name = (called or {}).get(message["tool_call_id"])
        text = f"(result of {name + ', ' if name else ''}{message['tool_call_id']})\n{text}"
    return "\n".join(filter(None, [text, _calls(message.get("tool_calls"))]))


def _calls(tool_calls) -> str:
    """Function calls as `→ name({"argument": value})`, one a line."""
    lines = []
    for call in tool_calls or []:
        function = (call.get("function") or {}) if isinstance(call, dict) else {}
        arguments = function.get("arguments")
        shown = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        lines.append(f"→ {function.get('name', '?')}({shown})")
    return "\n".join(lines)


def _call_names(messages: list) -> dict[str, str]:
    """The function each call of a chat's assistant messages names, by call id."""
    return {call["id"]: (call.get("function") or {}).get("name", "?")
            for message in messages or [] if isinstance(message, dict)
            for call in message.get("tool_calls") or [] if isinstance(call, dict) and call.get("id")}


def _offered(params: dict | None) -> str:
    """The names of the functions a request offered the model, comma-separated ("" when none)."""
    tools = (params or {}).get("tools") or []
    return ", ".join(str((tool.get("function") or {}).get("name", "?")) for tool in tools if isinstance(tool, dict))


def _prompt(messages: list) -> str:
    """The last user message of a request, for listings."""
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return _content(message)
    return _content(messages[-1]) if messages else ""


def _backlog_points(history) -> list[list]:
    return [[point.at.strftime("%m-%d %H:%M"), point.episodes] for point in history]


def _day_points(days) -> list[list]:
    return [[day.day.strftime("%m-%d"), day.episodes] for day in days]


def _isnumber(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _curves(metrics: dict) -> list[dict]:
    """Charts of a run's training: every list of numbers in `metrics["train"]` (or the top level),
    else the first and last loss the recipe reports."""
    train = metrics.get("train") if isinstance(metrics.get("train"), dict) else {}
    curves = []
    for key, value in [*train.items(), *metrics.items()]:
        if isinstance(value, list) and len(value) >= 2 and all(_isnumber(v) for v in value):
            curves.append({"name": key.replace("_", " "), "points": [[i + 1, v] for i, v in enumerate(value)]})
    if not curves:
        steps = train.get("steps") if _isnumber(train.get("steps")) else 2
        for stem in ("loss", "gkd"):
            first, last = train.get(f"{stem}_first"), train.get(f"{stem}_last")
            if _isnumber(first) and _isnumber(last):
                curves.append({"name": f"{stem}: first step → last steps", "points": [[1, first], [max(steps, 2), last]]})
    return curves


def _flatten(metrics: dict, prefix: str = "", depth: int = 0) -> list[tuple[str, object]]:
    rows = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and depth < 3:
            rows.extend(_flatten(value, name + ".", depth + 1))
        elif isinstance(value, list):
            shown = ", ".join(number(v) if _isnumber(v) else str(v) for v in value[:8])
            rows.append((name, f"[{shown}{', …' if len(value) > 8 else ''}]"))
        else:
            rows.append((name, value))
    return rows


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


templates.env.filters.update(
    content=_content, calls=_calls, call_names=_call_names, prompt=_prompt, backlog_points=_backlog_points,
    day_points=_day_points,
)


def _safe_next(target: str | None) -> str:
    """Only back into the dashboard: never an absolute or scheme-relative URL."""
    if target and target.startswith("/admin") and not target.startswith("//") and "\\" not in target:
        return target
    return "/admin"


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body (the sign-in and sign-out forms), without python-multipart."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {name: values[0] for name, values in parse_qs(body, keep_blank_values=True).items()}


@router.get("/login")
def login_page(
    request: Request, admin: PageSession, target: Annotated[str | None, Query(alias="next")] = None
) -> Response:
    if admin is not None:
        return RedirectResponse(_safe_next(target), status_code=303)
    return render(request, "login.html", None, next=_safe_next(target), error=None)


@router.post("/login")
async def login(request: Request, settings: SettingsDep, sessions: SessionFactoryDep) -> Response:
    form = await _form(request)
    target = _safe_next(form.get("next"))
    throttle, client = get_auth_throttle(request), client_address(request)
    try:
        throttle.check(client)
    except AuthThrottledError as exc:
        response = render(request, "login.html", None, status_code=429, next=target, error=exc.message)
        response.headers.update(retry_after_headers(exc.retry_after_s))
        return response
    if not admin_session.key_matches(settings, form.get("key", "")):
        if settings.admin_key:
            throttle.failed(client)
        message = (
            "Wrong admin key." if settings.admin_key
            else "The dashboard is disabled: set REVERIE_ADMIN_KEY."
        )
        return render(request, "login.html", None, status_code=401, next=target, error=message)
    value, _ = await run_in_threadpool(admin_session.issue, settings, sessions)
    response = RedirectResponse(target, status_code=303)
    admin_session.set_cookie(response, request, value)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/logout")
async def logout(request: Request, admin: PageSession, sessions: SessionFactoryDep) -> Response:
    form = await _form(request)
    if admin is not None and not admin_session.csrf_ok(admin, form.get(admin_session.CSRF_FIELD)):
        return HTMLResponse("Missing or wrong CSRF token.", status_code=403, headers=SECURITY_HEADERS)
    response = RedirectResponse("/admin/login", status_code=303)
    await run_in_threadpool(admin_session.sign_out, response, admin, sessions)
    return response


@router.get("")
def overview(
    request: Request, admin: PageSession, session: SessionDep, settings: SettingsDep, scheduler: SchedulerDep,
    liveness: LivenessDep,
) -> Response:
    if admin is None:
        return to_login(request)
    now, days = datetime.now(timezone.utc), 14
    stats = Stats.of(namespace_overviews(session=session, now=now, days=days), now=now, days=days, scheduler=scheduler,
                     liveness=liveness)
    return render(
        request, "overview.html", admin, stats=stats, today_by_hour=_today_by_hour(session, now),
        cron=settings.sleep_cron, tz=settings.sleep_timezone,
    )


def _today_by_hour(session, now: datetime) -> dict[str, list[list]]:
    """Per namespace, today's episodes hour by hour (UTC, up to the current hour): the chart drawn
    instead of the days' when all of the window's episodes are from today (one spike otherwise)."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    counts: dict[str, dict[int, int]] = {}
    for ns, hour, n in episode_store.episodes_per_hour(session=session, since=midnight):
        counts.setdefault(ns, {})[hour] = n
    return {ns: [[f"{h:02d}:00", by_hour.get(h, 0)] for h in range(now.hour + 1)] for ns, by_hour in counts.items()}


@router.get("/runs")
def runs_page(
    request: Request, admin: PageSession, session: SessionDep, liveness: LivenessDep, namespace: str | None = None
) -> Response:
    if admin is None:
        return to_login(request)
    runs = run_store.list_runs(session=session, namespace=check_namespace_filter(namespace), limit=200)
    return render(
        request, "runs.html", admin, runs=runs, namespace=namespace or "",
        namespaces=episode_store.namespaces(session=session), live=RunState.LIVE, shown=liveness.state_of,
    )


@router.get("/runs/{run_id}")
def run_page(request: Request, admin: PageSession, session: SessionDep, liveness: LivenessDep, run_id: str) -> Response:
    if admin is None:
        return to_login(request)
    run = run_store.get_run(session=session, run_id=_uuid(run_id)) if _uuid(run_id) else None
    if run is None:
        return render(request, "missing.html", admin, status_code=404, what=f"sleep run {run_id}")
    adapter = next((a for a in adapter_store.list_adapters(session=session, namespace=run.namespace) if a.run_id == run.id), None)
    metrics = run.metrics or {}
    headline = [(label, metrics.get(key)) for key, label in (
        ("recall", "Recall of new facts"), ("retention", "Retention of earlier nights"),
        ("general_agreement", "General score"), ("episodes", "Episodes"),
    ) if key in metrics]
    return render(
        request, "run.html", admin, run=run, adapter=adapter, headline=headline, metrics=metrics,
        curves=_curves(metrics), flat_metrics=sorted(_flatten(metrics), key=lambda row: row[0]), live=run.state in RunState.LIVE,
        state=liveness.state_of(run), note=liveness.note_of(run),
    )


@router.get("/adapters")
def adapters_page(
    request: Request, admin: PageSession, session: SessionDep, engine: EngineDep, namespace: str | None = None
) -> Response:
    if admin is None:
        return to_login(request)
    loaded = {info.name for info in engine.loaded_adapters()}
    adapters = adapter_store.list_adapters(session=session, namespace=check_namespace_filter(namespace))
    return render(
        request, "adapters.html", admin, adapters=adapters, loaded=loaded, namespace=namespace or "",
        namespaces=episode_store.namespaces(session=session),
    )


@router.get("/episodes")
def episodes_page(
    request: Request,
    admin: PageSession,
    session: SessionDep,
    namespace: str | None = None,
    status: str | None = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    since: str | None = None,
    until: str | None = None,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> Response:
    if admin is None:
        return to_login(request)
    filters = {"namespace": namespace or "", "status": status or "", "q": q or "", "since": since or "", "until": until or ""}
    error = None
    rows = []
    try:
        rows = episode_store.list_episodes(
            session=session, namespace=check_namespace_filter(namespace),
            status=status if status in EpisodeStatus.ALL else None,
            q=check_text(q, "q") or None, since=utc_bound(since), until=utc_bound(until, end=True, param="until"),
            limit=PAGE_SIZE + 1, offset=offset,
        )
    except InvalidRequestError as exc:
        error = exc.message
    more = len(rows) > PAGE_SIZE
    query = "&".join(f"{k}={quote(v)}" for k, v in filters.items() if v)
    return render(
        request, "episodes.html", admin, status_code=400 if error else 200, episodes=rows[:PAGE_SIZE], filters=filters, error=error,
        namespaces=episode_store.namespaces(session=session), statuses=EpisodeStatus.ALL,
        offset=offset, page_size=PAGE_SIZE, more=more, query=query,
    )


@router.get("/episodes/{episode_id}")
def episode_page(request: Request, admin: PageSession, session: SessionDep, episode_id: str) -> Response:
    if admin is None:
        return to_login(request)
    row = episode_store.get_episode(session=session, episode_id=_uuid(episode_id)) if _uuid(episode_id) else None
    if row is None:
        return render(request, "missing.html", admin, status_code=404, what=f"episode {episode_id}")
    return render(request, "episode.html", admin, episode=EpisodeOut.of(row), offered=_offered(row.params))


@router.get("/keys")
def keys_page(
    request: Request, admin: PageSession, session: SessionDep, settings: SettingsDep, namespace: str | None = None
) -> Response:
    """The store's API keys; the page's form and buttons create and revoke them through `/admin/api/keys`."""
    if admin is None:
        return to_login(request)
    keys = key_store.list_keys(session=session, namespace=check_namespace_filter(namespace))
    named = {key.namespace for key in key_store.list_keys(session=session)} | set(episode_store.namespaces(session=session))
    return render(
        request, "keys.html", admin, keys=keys, namespace=namespace or "", namespaces=sorted(named),
        configured=len(settings.key_namespaces),
    )
