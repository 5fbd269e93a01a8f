"""OpenAI wire types: requests, responses, stream chunks and errors, in the order of OpenAI's reference.

Nothing a client asks for from OpenAI's API is silently dropped. Every field of OpenAI's chat-completions
request is declared here and is either honoured, accepted because it cannot change the reply (the list
`WITHOUT_EFFECT_ON_THE_REPLY`), or refused with a 400 whose `param` names it.

A field OpenAI does not define (on the request, a message, a content part or `stream_options`) is
accepted and logged in one line per request, as vLLM does: clients and SDKs send many of their own
(`cache_control`, `top_k`, `guided_json`, ...), and refusing them would break those clients for fields
that are not part of the API Reverie implements. The log line is where an operator sees them.

Length: over 400 lines because every OpenAI wire type lives in this one module (the house style): the
request, its messages and response formats, the responses, stream chunks and errors.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from service.errors import InvalidRequestError
from service.serving.engines.base import SamplingParams, TokenLogprob, ToolCall, ToolSpec

log = logging.getLogger(__name__)

# OpenAI's seed is a 64-bit integer; torch and vLLM refuse larger ones. Both bounds are powers of two, so
# the OpenAPI schema states them exactly (2**64 - 1 as a JSON number rounds up to 2**64).
SEED_MIN, SEED_LIMIT = -(2**63), 2**64


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return _LONE_SURROGATE.search(value) is not None
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(key) or _has_lone_surrogate(item) for key, item in value.items())
    return False


# -- requests --------------------------------------------------------------------------------------
# Fields accepted although Reverie does nothing with them, because doing nothing is what they ask of a
# server like this one: the reply is the same with or without them. Every other field OpenAI defines is
# honoured or refused. The request's fields are recorded with its episode (`recorded_params`) either way.
WITHOUT_EFFECT_ON_THE_REPLY = {
    "metadata": "tags for the caller's own bookkeeping; kept with the episode",
    "prediction": "a latency hint (the expected output); the reply is the same without it",
    "prompt_cache_key": "a prompt-caching hint; the reply is the same without it",
    "prompt_cache_options": "a prompt-caching hint; the reply is the same without it",
    "prompt_cache_retention": "a prompt-caching hint; the reply is the same without it",
    "safety_identifier": "identifies the end user to OpenAI's abuse monitoring; kept with the episode",
    "service_tier": "auto and default only: this server has one tier (flex, priority, ... are refused)",
    "store": "false only: OpenAI's stored completions; Reverie records every request as an episode "
    "whatever `store` says (that is its purpose; forget through the admin API)",
    "stream_options.include_obfuscation": "random padding against side channels; Reverie pads nothing",
    "user": "identifies the end user; kept with the episode",
}


def refused(*accepted: Any, why: str) -> Any:
    """The type of a field Reverie does not honour: null and the `accepted` values (the ones that ask for
    nothing, such as `[]` or `"none"`) pass, anything else is a 400 naming the field and saying `why`.

    The OpenAPI schema lists only the values that pass, so a schema-valid request is never refused.
    """

    def check(value: Any) -> Any:
        if value is None or any(value == ok and isinstance(value, bool) == isinstance(ok, bool) for ok in accepted):
            return value
        raise PydanticCustomError("unsupported_value", why)

    return Annotated[Any, BeforeValidator(check), WithJsonSchema({"enum": [None, *accepted], "description": why})]


_NO_FUNCTIONS = "the deprecated `functions`/`function_call` are not supported: send `tools`/`tool_choice`"
# logit_bias keys: a token id in decimal; whether the model has it is checked against the engine.
TokenId = Annotated[str, Field(pattern=r"^[0-9]{1,9}$")]
_NO_AUDIO = "this model reads and writes text only"


class TextContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")  # fields OpenAI does not define: logged by the request

    type: Literal["text"]
    text: str


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="allow")  # fields OpenAI does not define: logged by the request

    name: str
    arguments: str  # the arguments object as JSON text, as the model wrote it


class MessageToolCall(BaseModel):
    """A call an assistant message made (input), or a reply makes (output)."""

    model_config = ConfigDict(extra="allow")

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    """One message of any role: an assistant's may carry its `tool_calls`, a tool's answers one by
    `tool_call_id`. Audio, which Reverie cannot take, is refused."""

    model_config = ConfigDict(extra="allow")  # fields OpenAI does not define: logged by the request

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextContentPart] | None = None
    name: str | None = None
    refusal: refused(why="an assistant refusal cannot be replayed as input") = None
    audio: refused(why=_NO_AUDIO) = None
    tool_calls: list[MessageToolCall] | None = None
    function_call: refused(why=_NO_FUNCTIONS) = None
    tool_call_id: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _text_parts_only(cls, value: Any) -> Any:
        # Without this, an image part fails as "Input should be a valid string", which hides the reason.
        if isinstance(value, list):
            for part in value:
                kind = part.get("type") if isinstance(part, dict) else None
                if kind != "text" and kind is not None:
                    message = "content parts of type '{kind}' are not supported: this model reads text only"
                    raise PydanticCustomError("unsupported_value", message, {"kind": kind})
        return value

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class FunctionDefinition(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: str | None = None
    parameters: dict[str, Any] | None = None  # a JSON schema; none: no arguments
    strict: bool | None = None  # a forced call matches its schema whether strict or not


class ToolDefinition(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["function"]
    function: FunctionDefinition


class NamedFunction(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str


class NamedToolChoice(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["function"]
    function: NamedFunction


class TextFormat(BaseModel):
    model_config = ConfigDict(extra="allow")  # fields OpenAI does not define: logged by the request

    type: Literal["text"]


class JsonObjectFormat(BaseModel):
    """Any JSON object, by grammar-constrained decoding."""

    model_config = ConfigDict(extra="allow")

    type: Literal["json_object"]


class JsonSchema(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: str | None = None
    # `schema` is OpenAI's name; as a pydantic field name it would shadow BaseModel.schema.
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class JsonSchemaFormat(BaseModel):
    """A JSON value matching `json_schema.schema`, by grammar-constrained decoding whether `strict` is
    true or not (a schema that cannot be enforced is a 400, not a best effort)."""

    model_config = ConfigDict(extra="allow")

    type: Literal["json_schema"]
    json_schema: JsonSchema


ResponseFormat = Annotated[TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")]


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")  # fields OpenAI does not define: logged by the request

    include_obfuscation: bool | None = None  # accepted without effect: see WITHOUT_EFFECT_ON_THE_REPLY
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # fields OpenAI does not define: see `_log_unknown_fields`

    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    model: str
    audio: refused(why=_NO_AUDIO) = None
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    function_call: refused("none", why=_NO_FUNCTIONS) = None
    functions: refused([], why=_NO_FUNCTIONS) = None
    logit_bias: dict[TokenId, Annotated[float, Field(ge=-100, le=100)]] | None = None
    logprobs: bool | None = None
    max_completion_tokens: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    metadata: dict[str, str] | None = None
    modalities: refused(["text"], why=_NO_AUDIO) = None
    moderation: refused(why="moderation is not supported") = None
    n: int | None = Field(default=1, ge=1, description="Choices to generate, at most REVERIE_MAX_CHOICES.")
    parallel_tool_calls: bool | None = None
    prediction: dict[str, Any] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    prompt_cache_key: str | None = None
    prompt_cache_options: dict[str, Any] | None = None
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    reasoning_effort: refused("none", why="this model does not reason before answering; only 'none' applies") = None
    response_format: ResponseFormat | None = None
    safety_identifier: str | None = None
    seed: int | None = Field(default=None, ge=SEED_MIN, lt=SEED_LIMIT)
    service_tier: refused("auto", "default", why="this server has one service tier: 'auto' or 'default'") = None
    stop: Annotated[str, Field(min_length=1)] | Annotated[list[Annotated[str, Field(min_length=1)]], Field(max_length=4)] | None = None
    store: refused(False, why="there are no stored completions to retrieve; every request is recorded as an "
                    "episode regardless (send false or nothing)") = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    tools: list[ToolDefinition] | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    top_p: float | None = Field(default=None, gt=0, le=1)
    user: str | None = None
    verbosity: refused(why="this model has no verbosity control") = None
    web_search_options: refused(why="web search is not supported") = None

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        # A JSON escape like "\ud800" decodes to a lone surrogate, which no tokenizer or database encodes.
        if _has_lone_surrogate(data):
            raise ValueError("the request contains a lone surrogate (\\ud800-\\udfff): text must be valid Unicode")
        return data

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> list[str] | None:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _log_unknown_fields(self) -> ChatCompletionRequest:
        unknown = self.unknown_fields()
        if unknown:
            shown = ", ".join(repr(name[:64]) for name in unknown[:20])
            more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
            log.info("ignoring request fields OpenAI does not define: %s%s", shown, more)
        return self

    def unknown_fields(self) -> list[str]:
        """The fields of this request that OpenAI does not define, as dotted paths
        (`top_k`, `messages.0.cache_control`, `messages.1.content.0.cache_control`, `stream_options.x`)."""
        found = sorted(self.model_extra or {})
        for i, message in enumerate(self.messages):
            found += [f"messages.{i}.{name}" for name in sorted(message.model_extra or {})]
            for j, part in enumerate(message.content if isinstance(message.content, list) else []):
                found += [f"messages.{i}.content.{j}.{name}" for name in sorted(part.model_extra or {})]
        nested = {"stream_options": self.stream_options, "response_format": self.response_format}
        if isinstance(self.response_format, JsonSchemaFormat):
            nested["response_format.json_schema"] = self.response_format.json_schema
        for i, tool in enumerate(self.tools or []):
            nested[f"tools.{i}"], nested[f"tools.{i}.function"] = tool, tool.function
        if isinstance(self.tool_choice, NamedToolChoice):
            nested["tool_choice"], nested["tool_choice.function"] = self.tool_choice, self.tool_choice.function
        for i, message in enumerate(self.messages):
            for j, call in enumerate(message.tool_calls or []):
                nested[f"messages.{i}.tool_calls.{j}"] = call
                nested[f"messages.{i}.tool_calls.{j}.function"] = call.function
        for path, part in nested.items():
            found += [f"{path}.{name}" for name in sorted(getattr(part, "model_extra", None) or {})]
        return found

    def tool_spec(self) -> ToolSpec | None:
        """The tools offered and what the reply must do with them, or None when the model is offered
        none (no tools, or tool_choice "none": the template does not see them and the reply is text).
        A tool_choice that names no offered function, or forces a call without tools, is a 400 naming
        `tool_choice`, as on OpenAI."""
        choice, tools = self.tool_choice, self.tools or []
        names = [tool.function.name for tool in tools]
        if len(set(names)) < len(names):
            raise InvalidRequestError("tools must not name a function twice.", param="tools")
        if not tools:
            if choice not in (None, "none"):
                raise InvalidRequestError("tool_choice needs tools: send the tools it may choose from.", param="tool_choice")
            return None
        if choice == "none":
            return None
        function = choice.function.name if isinstance(choice, NamedToolChoice) else None
        if function is not None and function not in names:
            raise InvalidRequestError(f"tool_choice names {function!r}, which is not among the tools.", param="tool_choice")
        offered = tuple(tool.model_dump(exclude_none=True, include={"type", "function"}) for tool in tools)
        for tool in offered:  # OpenAI's fields only: the template and vLLM get no client extras
            tool["function"] = {k: v for k, v in tool["function"].items() if k in FunctionDefinition.model_fields}
        return ToolSpec(
            tools=offered, choice="required" if choice == "required" else "auto", function=function,
            parallel=self.parallel_tool_calls is not False,
        )

    def check_sampling(self, *, vocab_size: int, replayable: bool) -> None:
        """What the schema cannot say, as a 400 naming the field: fields that depend on each other, on the
        model's vocabulary, or on a replay (`replayable`: an Idempotency-Key's replay answers from the
        episode, which holds one choice's text and no log-probabilities)."""
        if self.top_logprobs and not self.logprobs:
            raise InvalidRequestError("top_logprobs needs logprobs set to true.", param="top_logprobs")
        outside = sorted((token for token in (self.logit_bias or {}) if int(token) >= vocab_size), key=int)
        if outside:
            raise InvalidRequestError(
                f"logit_bias names token ids outside this model's vocabulary of {vocab_size}: "
                f"{', '.join(outside[:5])}.",
                param="logit_bias",
            )
        for asked, param in (((self.n or 1) > 1, "n"), (bool(self.logprobs), "logprobs")):
            if asked and replayable:
                raise InvalidRequestError(
                    "An Idempotency-Key replays the recorded reply, which keeps neither extra choices nor "
                    f"log-probabilities; send {param} without the key.",
                    param=param,
                )

    def structured_format(self) -> dict[str, Any] | None:
        """The response_format as the engines take it (OpenAI's shape, OpenAI's fields only), or None for
        plain text."""
        chosen = self.response_format
        if chosen is None or chosen.type == "text":
            return None
        if chosen.type == "json_object":
            return {"type": "json_object"}
        schema = chosen.json_schema.model_dump(by_alias=True, exclude_none=True, include=set(JsonSchema.model_fields))
        return {"type": "json_schema", "json_schema": schema}

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def to_sampling_params(self, default_max_tokens: int) -> SamplingParams:
        return SamplingParams(
            max_tokens=self.requested_max_tokens() or default_max_tokens,
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            seed=self.seed,
            stop=tuple(self.stop or ()),
            presence_penalty=self.presence_penalty or 0.0,
            frequency_penalty=self.frequency_penalty or 0.0,
            logit_bias={int(token_id): bias for token_id, bias in (self.logit_bias or {}).items()},
            logprobs=(self.top_logprobs or 0) if self.logprobs else None,
            n=self.n or 1,
            response_format=self.structured_format(),
        )

    def plain_messages(self) -> list[dict]:
        """Messages as the chat template and the store want them: role and text, and the participant's
        `name` or the answered `tool_call_id` where the client gave one (templates that know them use
        them). An assistant's `tool_calls` are kept in transformers' shape, arguments as an object
        (templates write them with `tojson`; a string would be quoted twice), readable in the store."""
        plain = []
        for message in self.messages:
            item: dict[str, Any] = {"role": message.role, "content": message.text()}
            if message.name is not None:
                item["name"] = message.name
            if message.tool_call_id is not None:
                item["tool_call_id"] = message.tool_call_id
            if message.tool_calls:
                item["tool_calls"] = [template_call(call.id, call.function.name, call.function.arguments)
                                      for call in message.tool_calls]
            plain.append(item)
        return plain

    def recorded_params(self) -> dict[str, Any]:
        return self.model_dump(exclude={"messages"}, exclude_none=True, by_alias=True)


def template_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """A call as chat templates and the episode store take it: arguments parsed to an object where
    they are JSON (kept as the text the client sent where they are not)."""
    try:
        parsed: Any = json.loads(arguments)
    except ValueError:
        parsed = arguments
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": parsed}}


def calls_of(template_calls: list[dict] | None) -> list[ToolCall]:
    """`template_call`'s inverse: the calls an episode keeps, as a reply carries them (a replay)."""
    calls = []
    for call in template_calls or []:
        arguments = call["function"]["arguments"]
        text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        calls.append(ToolCall(id=call["id"], name=call["function"]["name"], arguments=text))
    return calls


# -- responses -------------------------------------------------------------------------------------
def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


class UsageInfo(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


# vLLM's floor for a log-probability: JSON has no -Infinity.
LOGPROB_FLOOR = -9999.0


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprobContent(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprobContent] | None
    refusal: list[TokenLogprobContent] | None = None

    @classmethod
    def of(cls, entries: list[TokenLogprob]) -> ChoiceLogprobs:
        def top(entry: TokenLogprob) -> dict[str, Any]:
            data = None if entry.bytes is None else list(entry.bytes)
            return {"token": entry.token, "logprob": max(entry.logprob, LOGPROB_FLOOR), "bytes": data}

        return cls(content=[{**top(entry), "top_logprobs": [top(alt) for alt in entry.top]} for entry in entries])


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: str | None = None
    tool_calls: list[MessageToolCall] | None = None

    @classmethod
    def of(cls, text: str, calls: list[ToolCall]) -> AssistantMessage:
        """A reply's message; one that is only calls has no content (null), as on OpenAI."""
        if not calls:
            return cls(content=text)
        tool_calls = [MessageToolCall(id=c.id, function=FunctionCall(name=c.name, arguments=c.arguments)) for c in calls]
        return cls(content=text or None, tool_calls=tool_calls)


FinishReason = Literal["stop", "length", "tool_calls"]


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: FinishReason | None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: UsageInfo
    system_fingerprint: str | None = None


# A local call is parsed whole before it is sent; its arguments still go out in pieces of this many
# characters, the shape clients must reassemble from OpenAI and vLLM.
_ARGUMENT_PIECE = 16


class DeltaFunctionCall(BaseModel):
    name: str | None = None
    arguments: str | None = None


class DeltaToolCall(BaseModel):
    """A piece of the call at `index` of a streamed choice: the first carries its id, type and name,
    the next ones its arguments' text, to be concatenated (as OpenAI streams them)."""

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: DeltaFunctionCall

    @model_serializer(mode="wrap")
    def _without_nulls(self, handler):
        # OpenAI sends a piece's absent fields not at all; clients concatenate what is there.
        data = handler(self)
        data["function"] = {k: v for k, v in data["function"].items() if v is not None}
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def pieces(cls, index: int, call: ToolCall) -> list[DeltaToolCall]:
        head = cls(index=index, id=call.id, type="function", function=DeltaFunctionCall(name=call.name, arguments=""))
        size = _ARGUMENT_PIECE
        text = call.arguments
        return [head, *(cls(index=index, function=DeltaFunctionCall(arguments=text[i : i + size]))
                        for i in range(0, len(text), size))]


class DeltaMessage(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[DeltaToolCall] | None = None

    @model_serializer(mode="wrap")
    def _calls_only_when_made(self, handler):
        data = handler(self)
        if data.get("tool_calls") is None:
            data.pop("tool_calls", None)
        return data


class ChunkChoice(BaseModel):
    index: int = 0
    delta: DeltaMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: FinishReason | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: UsageInfo | None = None
    system_fingerprint: str | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "reverie"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# -- errors ----------------------------------------------------------------------------------------
class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
