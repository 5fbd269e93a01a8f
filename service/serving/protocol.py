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

import logging
import re
import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator, model_validator
from pydantic_core import PydanticCustomError

from service.errors import InvalidRequestError
from service.serving.engines.base import SamplingParams, TokenLogprob

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
    "parallel_tool_calls": "only matters once tools are offered, and `tools` is refused",
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


def _refused(*accepted: Any, why: str) -> Any:
    """The type of a field Reverie does not honour: null and the `accepted` values (the ones that ask for
    nothing, such as `[]` or `"none"`) pass, anything else is a 400 naming the field and saying `why`.

    The OpenAPI schema lists only the values that pass, so a schema-valid request is never refused.
    """

    def check(value: Any) -> Any:
        if value is None or any(value == ok and isinstance(value, bool) == isinstance(ok, bool) for ok in accepted):
            return value
        raise PydanticCustomError("unsupported_value", why)

    return Annotated[Any, BeforeValidator(check), WithJsonSchema({"enum": [None, *accepted], "description": why})]


_NO_TOOLS = "tools and function calling are not supported yet"
# logit_bias keys: a token id in decimal; whether the model has it is checked against the engine.
TokenId = Annotated[str, Field(pattern=r"^[0-9]{1,9}$")]
_NO_AUDIO = "this model reads and writes text only"


class TextContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")  # fields OpenAI does not define: logged by the request

    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """One message of any role. Tool calls and audio, which Reverie cannot take yet, are refused."""

    model_config = ConfigDict(extra="allow")  # fields OpenAI does not define: logged by the request

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextContentPart] | None = None
    name: str | None = None
    refusal: _refused(why="an assistant refusal cannot be replayed as input") = None
    audio: _refused(why=_NO_AUDIO) = None
    tool_calls: _refused([], why=_NO_TOOLS) = None
    function_call: _refused(why=_NO_TOOLS) = None
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
    audio: _refused(why=_NO_AUDIO) = None
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    function_call: _refused("none", why=_NO_TOOLS) = None
    functions: _refused([], why=_NO_TOOLS) = None
    logit_bias: dict[TokenId, Annotated[float, Field(ge=-100, le=100)]] | None = None
    logprobs: bool | None = None
    max_completion_tokens: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    metadata: dict[str, str] | None = None
    modalities: _refused(["text"], why=_NO_AUDIO) = None
    moderation: _refused(why="moderation is not supported") = None
    n: int | None = Field(default=1, ge=1, description="Choices to generate, at most REVERIE_MAX_CHOICES.")
    parallel_tool_calls: bool | None = None
    prediction: dict[str, Any] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    prompt_cache_key: str | None = None
    prompt_cache_options: dict[str, Any] | None = None
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None
    reasoning_effort: _refused("none", why="this model does not reason before answering; only 'none' applies") = None
    response_format: ResponseFormat | None = None
    safety_identifier: str | None = None
    seed: int | None = Field(default=None, ge=SEED_MIN, lt=SEED_LIMIT)
    service_tier: _refused("auto", "default", why="this server has one service tier: 'auto' or 'default'") = None
    stop: Annotated[str, Field(min_length=1)] | Annotated[list[Annotated[str, Field(min_length=1)]], Field(max_length=4)] | None = None
    store: _refused(False, why="there are no stored completions to retrieve; every request is recorded as an "
                    "episode regardless (send false or nothing)") = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    tool_choice: _refused("none", why=_NO_TOOLS) = None
    tools: _refused([], why=_NO_TOOLS) = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    top_p: float | None = Field(default=None, gt=0, le=1)
    user: str | None = None
    verbosity: _refused(why="this model has no verbosity control") = None
    web_search_options: _refused(why="web search is not supported") = None

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
        for path, part in nested.items():
            found += [f"{path}.{name}" for name in sorted(getattr(part, "model_extra", None) or {})]
        return found

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
        `name` or the answered `tool_call_id` where the client gave one (templates that know them use them)."""
        plain = []
        for message in self.messages:
            item = {"role": message.role, "content": message.text()}
            if message.name is not None:
                item["name"] = message.name
            if message.tool_call_id is not None:
                item["tool_call_id"] = message.tool_call_id
            plain.append(item)
        return plain

    def recorded_params(self) -> dict[str, Any]:
        return self.model_dump(exclude={"messages"}, exclude_none=True, by_alias=True)


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


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: UsageInfo
    system_fingerprint: str | None = None


class DeltaMessage(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: DeltaMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None = None


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
