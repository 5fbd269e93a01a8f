"""Tools on the local engine: which chat templates take them, how a reply's calls are written, parsed
and streamed, and the grammar that forces a call when tool_choice is required or names a function.

A template takes tools when rendering a conversation with a tool changes the prompt (transformers
passes `tools` to every template; one that never reads them renders the same text, and its model was
never taught to call anything). The reply's calls are parsed in the format the template teaches, found
by its markup: Hermes (`<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, the format of Qwen2.5,
Hermes, SmolLM3 and vLLM's `hermes` parser) is the one known so far; a template that takes tools in
another format is refused rather than answered with calls nobody parses.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from service.errors import InvalidRequestError
from service.serving.engines.base import GenerationChunk, ToolCall, ToolSpec

HERMES = "hermes"

_PROBE_MESSAGES = [{"role": "user", "content": "Hello"}]
_PROBE_TOOLS = [
    {"type": "function", "function": {
        "name": "reverie_probe", "description": "probe", "parameters": {"type": "object", "properties": {}},
    }}
]


def call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def template_tool_format(tokenizer: Any) -> str | None:
    """The tool-call format `tokenizer`'s chat template teaches ("hermes", or "unknown" for a template
    that takes tools in a format not parsed here), or None when the template ignores tools."""

    def render(tools: list | None) -> str:
        return tokenizer.apply_chat_template(_PROBE_MESSAGES, tools=tools, add_generation_prompt=True, tokenize=False)

    try:
        if render(_PROBE_TOOLS) == render(None):
            return None
    except Exception:  # a template that raises on tools does not take them either
        return None
    template = tokenizer.chat_template
    source = "\n".join(template.values()) if isinstance(template, dict) else str(template or "")
    return HERMES if "<tool_call>" in source else "unknown"


def check_tool_format(tool_format: str | None) -> None:
    """`InvalidRequestError` naming `tools` unless the template takes tools in a format parsed here."""
    if tool_format is None:
        raise InvalidRequestError(
            "This model's chat template does not support tools (rendering it with tools gives the same prompt "
            "as without): serve a model whose template takes tools, or send tool_choice 'none'.",
            param="tools",
        )
    if tool_format != HERMES:
        raise InvalidRequestError(
            "This model's chat template takes tools in a format this server cannot parse (only Hermes-style "
            "<tool_call> JSON is); send tool_choice 'none'.",
            param="tools",
        )


# -- parsing ---------------------------------------------------------------------------------------
def hermes_call(body: str) -> ToolCall | None:
    """The call in the text between `<tool_call>` and `</tool_call>`: a JSON object with a string `name`
    and an object `arguments` (a JSON string of one is taken too); None when it is not one."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    arguments = value.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    if not isinstance(arguments, dict):
        return None
    return ToolCall(id=call_id(), name=value["name"], arguments=json.dumps(arguments, ensure_ascii=False))


@dataclass(frozen=True)
class CallMarkup:
    """How a format writes one call: the text around it and the parser of what is between."""

    open: str
    close: str
    parse: Callable[[str], ToolCall | None]


FORMATS = {HERMES: CallMarkup("<tool_call>", "</tool_call>", hermes_call)}


class ToolCallSplitter:
    """Splits a reply, fed as it is generated, into its text and its calls.

    Text is passed on as it comes, except what may still turn out to open a call (a prefix of the open
    tag) and trailing whitespace, which is dropped when a call follows it (and at the end, once a call
    was made): whitespace around calls only separates them. A call is passed on whole when its close tag arrives (or at the end, when the
    model stopped right after the call's JSON). What does not parse as a call stays text, markup
    included, as vLLM's parsers leave it: the client sees what the model wrote.
    """

    def __init__(self, markup: CallMarkup):
        self._markup = markup
        self._buffer = ""
        self._in_call = False
        self.calls: list[ToolCall] = []

    def feed(self, text: str) -> tuple[str, list[ToolCall]]:
        """The text and the calls that are final once `text` is added."""
        self._buffer += text
        out, calls = "", []
        while True:
            if self._in_call:
                end = self._buffer.find(self._markup.close)
                if end < 0:
                    return out, calls
                out += self._close_call(self._buffer[:end], calls, closed=True)
                self._buffer = self._buffer[end + len(self._markup.close) :]
                continue
            start = self._buffer.find(self._markup.open)
            if start < 0:
                keep = _held_back(self._buffer, self._markup.open)
                text_part = self._buffer[: len(self._buffer) - keep]
                # Whitespace-only text may be the gap before a call: wait for what follows it.
                if text_part.strip():
                    out += text_part
                    self._buffer = self._buffer[len(text_part) :]
                return out, calls
            out += self._buffer[:start].rstrip()  # held back while streaming: the same whole or in pieces
            self._buffer = self._buffer[start + len(self._markup.open) :]
            self._in_call = True

    def finish(self) -> tuple[str, list[ToolCall]]:
        """What is left at the end of the reply."""
        rest, self._buffer = self._buffer, ""
        calls: list[ToolCall] = []
        if self._in_call:
            return self._close_call(rest, calls, closed=False), calls
        if self.calls and not rest.strip():
            return "", calls
        return rest, calls

    def _close_call(self, body: str, calls: list[ToolCall], *, closed: bool) -> str:
        self._in_call = False
        call = self._markup.parse(body.strip())
        if call is None:
            return self._markup.open + body + (self._markup.close if closed else "")
        calls.append(call)
        self.calls.append(call)
        return ""


def _held_back(text: str, tag: str) -> int:
    """The length of the longest end of `text` that is a start of `tag`, plus the whitespace before it."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size + len(text[: -size]) - len(text[: -size].rstrip())
    return len(text) - len(text.rstrip())


def parse_tool_calls(text: str, tool_format: str) -> tuple[str, list[ToolCall]]:
    """A whole reply's text (None-free: "" when it holds only calls) and its calls."""
    splitter = ToolCallSplitter(FORMATS[tool_format])
    text_part, calls = splitter.feed(text)
    rest, more = splitter.finish()
    return text_part + rest, calls + more


async def split_tool_calls(
    chunks: AsyncIterator[GenerationChunk], n: int, tool_format: str
) -> AsyncIterator[GenerationChunk]:
    """`chunks` of `n` choices with each choice's calls split out of its text; a choice that made calls
    and stopped by itself finishes with "tool_calls", as on OpenAI."""
    splitters = [ToolCallSplitter(FORMATS[tool_format]) for _ in range(n)]
    try:
        async for chunk in chunks:
            splitter = splitters[chunk.index]
            text, calls = splitter.feed(chunk.text)
            finish = chunk.finish_reason
            if finish is not None:
                rest, more = splitter.finish()
                text, calls = text + rest, calls + more
                if finish == "stop" and splitter.calls:
                    finish = "tool_calls"
            yield replace(chunk, text=text, tool_calls=calls or None, finish_reason=finish)
    finally:
        await chunks.aclose()  # closing this closes the generation: the worker drops the request


# -- forcing a call --------------------------------------------------------------------------------
def _call_schema(tool: Mapping[str, Any]) -> dict[str, Any]:
    function = tool["function"]
    parameters = function.get("parameters") or {"type": "object", "properties": {}}
    return {
        "type": "object",
        "properties": {"name": {"const": function["name"]}, "arguments": parameters},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def forced_call_grammar(spec: ToolSpec) -> str:
    """A Lark grammar (llguidance's dialect) for a reply that is only calls, in Hermes markup: one call
    of the named function, or of any offered function when tool_choice is required (several, one per
    `<tool_call>`, if parallel calls are allowed), whose arguments match the function's parameters.
    JSON without free whitespace, as for response_format (see structured.py)."""
    tools = [tool for tool in spec.tools if spec.function in (None, tool["function"]["name"])]
    schemas = [_call_schema(tool) for tool in tools]
    schema = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
    schema["x-guidance"] = {"whitespace_flexible": False}
    markup = FORMATS[HERMES]
    call = f"call: {json.dumps(markup.open + chr(10))} %json {json.dumps(schema)} {json.dumps(chr(10) + markup.close)}"
    start = 'start: call ("\\n" call)*' if spec.parallel and spec.function is None else "start: call"
    return f"%llguidance {{}}\n{start}\n{call}\n"
