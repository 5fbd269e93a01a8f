"""Structured logs: one JSON object a line, with the request id of the request being served."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# A client's X-Request-Id is kept only in this shape (a UUID, a hex or base64url token, dotted or
# colon-separated ids); anything else (spaces, quotes, control characters, over 128) gets a new id.
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def accepted_request_id(given: bytes | None) -> str:
    """The client's id when it has the safe shape, else a fresh one."""
    text = (given or b"").decode("latin-1")
    return text if SAFE_REQUEST_ID.fullmatch(text) else uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        current = request_id.get()
        if current:
            entry["request_id"] = current
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(log_format: str, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per vLLM health check otherwise


class RequestContext:
    """Give each HTTP request an id (the client's `X-Request-Id` in a safe shape, or a new one), echo it in the
    response, make it visible to every log line written while serving it, and count responses."""

    def __init__(self, app: ASGIApp, on_response=None):
        self.app = app
        self.on_response = on_response or (lambda path, status: None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        current = accepted_request_id(dict(scope["headers"]).get(b"x-request-id"))
        token = request_id.set(current)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", current.encode("latin-1"))]
                self.on_response(scope["path"], message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
