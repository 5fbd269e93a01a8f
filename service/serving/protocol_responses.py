"""OpenAI Responses API wire types (`POST /v1/responses`), in the order of OpenAI's reference, and their
mapping onto a chat-completions request: a response is served and recorded as a chat is.

As on chat (protocol.py): every field OpenAI defines is honoured, accepted because it cannot change the
reply, or refused with a 400 naming it; a field OpenAI does not define is accepted and logged. Reverie
keeps no response objects: `store` is false or absent (as chat's `store`), and `previous_response_id`
and `conversation`, which continue a stored response, are refused; send the earlier turns as `input`.
Every response is recorded as an episode whatever `store` says, as every chat is.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from service.errors import InvalidRequestError
from service.serving.protocol import ChatCompletion, ChatCompletionRequest, FunctionDefinition, refused

log = logging.getLogger(__name__)

_NO_STATE = "Reverie keeps no response objects to continue from: send the earlier turns as input"
_TEXT_ONLY = "this model reads and writes text only"


def _only_types(*kinds: str, what: str) -> Any:
    """A list whose items' `type` is one of `kinds` (a missing type counts as the first), with a 400
    saying which type is not supported rather than pydantic's union of every failed member."""

    def check(value: Any) -> Any:
        for item in value if isinstance(value, list) else []:
            kind = item.get("type", kinds[0]) if isinstance(item, dict) else None
            if kind is not None and kind not in kinds:
                raise PydanticCustomError(
                    "unsupported_value", "{what} of type '{kind}' are not supported here (only {ok})",
                    {"what": what, "kind": str(kind)[:64], "ok": ", ".join(kinds)},
                )
        return value

    return BeforeValidator(check)


class InputText(BaseModel):
    """A text part of a message: `input_text`, or `output_text` where an earlier reply is sent back."""

    model_config = ConfigDict(extra="allow")  # fields OpenAI does not define: logged by the request

    type: Literal["input_text", "output_text"]
    text: str


TextParts = Annotated[list[InputText], _only_types("input_text", "output_text", what="content parts")]


def _text(content: str | list[InputText]) -> str:
    return content if isinstance(content, str) else "".join(part.text for part in content)


class MessageItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer", "assistant"]
    content: str | TextParts
    id: str | None = None  # an output message sent back as it came
    status: str | None = None


class FunctionCallItem(BaseModel):
    """A call an earlier reply made, sent back with its result (`FunctionCallOutputItem`)."""

    model_config = ConfigDict(extra="allow")

    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str
    id: str | None = None
    status: str | None = None


class FunctionCallOutputItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["function_call_output"]
    call_id: str
    output: str | TextParts
    id: str | None = None
    status: str | None = None


InputItem = Annotated[
    MessageItem | FunctionCallItem | FunctionCallOutputItem,
    Field(discriminator="type"),
    BeforeValidator(lambda item: {"type": "message", **item} if isinstance(item, dict) and "type" not in item else item),
]


class FunctionTool(FunctionDefinition):
    """The Responses API's function tool: chat's function definition, flat beside its type."""

    type: Literal["function"]


class FunctionToolChoice(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["function"]
    name: str


class TextFormatPlain(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["text"]


class JsonObjectTextFormat(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["json_object"]


class JsonSchemaTextFormat(BaseModel):
    """Chat's `response_format.json_schema`, flattened into the format as the Responses API has it."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: Literal["json_schema"]
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    json_schema: dict[str, Any] = Field(alias="schema")  # `schema` would shadow BaseModel.schema
    description: str | None = None
    strict: bool | None = None


class TextConfig(BaseModel):
    model_config = ConfigDict(extra="allow")

    format: Annotated[
        TextFormatPlain | JsonObjectTextFormat | JsonSchemaTextFormat, Field(discriminator="type")
    ] | None = None
    verbosity: refused(why="this model has no verbosity control") = None


class ResponsesStreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_obfuscation: bool | None = None  # random padding against side channels; Reverie pads nothing


class ResponsesRequest(BaseModel):
    model_config = ConfigDict(extra="allow")  # fields OpenAI does not define: logged, see `unknown_fields`

    access_programs: refused(why="access programs are not supported") = None
    background: refused(False, why="responses are served in the foreground; there is no stored response to poll") = None
    background_options: refused(why="responses are served in the foreground") = None
    context_management: refused(why="a conversation longer than the context is a 400, never compacted") = None
    conversation: refused(why=_NO_STATE) = None
    image: refused(why=_TEXT_ONLY) = None
    include: refused([], why="no extra output (reasoning, logprobs, tool sources) is served here") = None
    input: str | Annotated[list[InputItem], Field(min_length=1), _only_types(
        "message", "function_call", "function_call_output", what="input items")]
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    max_tool_calls: refused(why="a reply's calls are bounded by parallel_tool_calls only") = None
    metadata: dict[str, str] | None = None
    model: str
    moderation: refused(why="moderation is not supported") = None
    parallel_tool_calls: bool | None = None
    previous_response_id: refused(why=_NO_STATE) = None
    prompt: refused(why="stored prompt templates are not supported: send instructions and input") = None
    prompt_cache_key: str | None = None  # a prompt-caching hint; the reply is the same without it
    prompt_cache_options: dict[str, Any] | None = None  # likewise
    prompt_cache_retention: Literal["in_memory", "24h"] | None = None  # likewise
    reasoning: refused(why="this model does not reason before answering") = None
    safety_identifier: str | None = None
    service_tier: refused("auto", "default", why="this server has one service tier: 'auto' or 'default'") = None
    store: refused(False, why="Reverie keeps no response objects to retrieve or continue from; every response is "
                   "recorded as an episode regardless (send false or nothing)") = None
    stream: bool | None = False
    stream_options: ResponsesStreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    text: TextConfig | None = None
    tool_choice: Literal["none", "auto", "required"] | FunctionToolChoice | None = None
    tools: Annotated[list[FunctionTool], _only_types("function", what="tools")] | None = None
    top_logprobs: refused(0, why="log-probabilities are served by /v1/chat/completions (logprobs)") = None
    top_p: float | None = Field(default=None, gt=0, le=1)
    truncation: refused("disabled", why="a conversation longer than the context is a 400, never truncated") = None
    user: str | None = None

    @model_validator(mode="after")
    def _log_unknown_fields(self) -> ResponsesRequest:
        if unknown := self.unknown_fields():
            log.info("ignoring request fields OpenAI does not define: %s", ", ".join(repr(n[:64]) for n in unknown[:20]))
        return self

    def unknown_fields(self) -> list[str]:
        """Fields OpenAI does not define, as dotted paths (`top_k`, `input.0.cache_control`, ...)."""
        nested: dict[str, Any] = {"": self, "text": self.text, "stream_options": self.stream_options}
        if self.text is not None:
            nested["text.format"] = self.text.format
        if isinstance(self.tool_choice, FunctionToolChoice):
            nested["tool_choice"] = self.tool_choice
        nested |= {f"tools.{i}": tool for i, tool in enumerate(self.tools or [])}
        for i, item in enumerate(self.input if isinstance(self.input, list) else []):
            nested[f"input.{i}"] = item
            parts = getattr(item, "content", None) or getattr(item, "output", None)
            nested |= {f"input.{i}.content.{j}": part for j, part in enumerate(parts if isinstance(parts, list) else [])}
        return [f"{path}.{name}".lstrip(".") for path, part in nested.items()
                for name in sorted(getattr(part, "model_extra", None) or {})]

    # -- onto the chat path ------------------------------------------------------------------------
    def chat_messages(self) -> list[dict[str, Any]]:
        """`instructions` as the system message, then the input items as chat messages: a function call
        joins the assistant message just before it (one turn's text and calls), a call's output is a
        tool message answering it."""
        messages: list[dict[str, Any]] = [{"role": "system", "content": self.instructions}] if self.instructions else []
        for item in [MessageItem(role="user", content=self.input)] if isinstance(self.input, str) else self.input:
            if isinstance(item, MessageItem):
                messages.append({"role": item.role, "content": _text(item.content)})
            elif isinstance(item, FunctionCallOutputItem):
                messages.append({"role": "tool", "tool_call_id": item.call_id, "content": _text(item.output)})
            else:
                call = {"id": item.call_id, "type": "function", "function": {"name": item.name, "arguments": item.arguments}}
                if not (messages and messages[-1]["role"] == "assistant"):
                    messages.append({"role": "assistant", "content": None})
                messages[-1].setdefault("tool_calls", []).append(call)
        return messages

    def to_chat_request(self) -> ChatCompletionRequest:
        """The chat request this response is served as; what chat refuses is a 400 naming this request's
        field (`input` for messages, `max_output_tokens`, `text.format`)."""
        fields = self.model_dump(exclude_none=True, include={
            "metadata", "model", "parallel_tool_calls", "prompt_cache_key", "prompt_cache_options",
            "prompt_cache_retention", "safety_identifier", "temperature", "top_p", "user",
        })
        fields["messages"] = self.chat_messages()
        fields["max_completion_tokens"] = self.max_output_tokens
        fields["stream"] = bool(self.stream)
        if self.stream:  # the usage comes last in the chat stream; response.completed carries it
            fields["stream_options"] = {"include_usage": True}
        if self.tools is not None:
            fields["tools"] = [{"type": "function", "function": tool.model_dump(
                exclude_none=True, include={"name", "description", "parameters", "strict"})} for tool in self.tools]
        if isinstance(self.tool_choice, FunctionToolChoice):
            fields["tool_choice"] = {"type": "function", "function": {"name": self.tool_choice.name}}
        elif self.tool_choice is not None:
            fields["tool_choice"] = self.tool_choice
        chosen = self.text.format if self.text is not None else None
        if isinstance(chosen, JsonSchemaTextFormat):
            schema = chosen.model_dump(by_alias=True, exclude_none=True, include={"name", "json_schema", "description", "strict"})
            fields["response_format"] = {"type": "json_schema", "json_schema": schema}
        elif chosen is not None:
            fields["response_format"] = {"type": chosen.type}
        try:
            return ChatCompletionRequest.model_validate(fields)
        except ValidationError as exc:
            first = exc.errors()[0]
            param = responses_param(".".join(str(part) for part in first["loc"]))
            raise InvalidRequestError(f"Invalid value for '{param}': {first['msg']}", param=param) from exc

    def echo(self) -> dict[str, Any]:
        """The request's settings as a response object repeats them."""
        chosen = self.text.format if self.text is not None and self.text.format is not None else TextFormatPlain(type="text")
        choice = self.tool_choice or "auto"
        return {
            "instructions": self.instructions, "max_output_tokens": self.max_output_tokens, "metadata": self.metadata or {},
            "parallel_tool_calls": self.parallel_tool_calls is not False,
            "temperature": 1.0 if self.temperature is None else self.temperature,
            "text": {"format": chosen.model_dump(by_alias=True, exclude_none=True, include=set(type(chosen).model_fields) | {"schema"})},
            "tool_choice": choice if isinstance(choice, str) else choice.model_dump(include={"type", "name"}),
            "tools": [tool.model_dump(include=set(FunctionTool.model_fields)) for tool in self.tools or []],
            "top_p": 1.0 if self.top_p is None else self.top_p, "user": self.user,
        }


# Chat's fields that a Responses request spells differently, for the `param` of a chat error.
_CHAT_TO_RESPONSES = {"messages": "input", "max_tokens": "max_output_tokens",
                      "max_completion_tokens": "max_output_tokens", "response_format": "text.format"}


def responses_param(chat_param: str | None) -> str | None:
    if chat_param is None:
        return None
    return _CHAT_TO_RESPONSES.get(chat_param.partition(".")[0], chat_param)


# -- the response ----------------------------------------------------------------------------------
class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[Any] = []
    logprobs: list[Any] = []


class OutputMessage(BaseModel):
    id: str
    type: Literal["message"] = "message"
    status: Literal["in_progress", "completed", "incomplete"] = "completed"
    role: Literal["assistant"] = "assistant"
    content: list[OutputText]


class OutputFunctionCall(BaseModel):
    id: str
    type: Literal["function_call"] = "function_call"
    status: Literal["in_progress", "completed", "incomplete"] = "completed"
    call_id: str
    name: str
    arguments: str


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: dict[str, int] = {"cached_tokens": 0}
    output_tokens: int
    output_tokens_details: dict[str, int] = {"reasoning_tokens": 0}
    total_tokens: int


class ResponseObject(BaseModel):
    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Literal["in_progress", "completed", "incomplete", "failed"]
    error: dict[str, Any] | None = None
    incomplete_details: dict[str, Any] | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    metadata: dict[str, str] = {}
    model: str
    output: list[Annotated[OutputMessage | OutputFunctionCall, Field(discriminator="type")]]
    parallel_tool_calls: bool = True
    previous_response_id: None = None
    reasoning: dict[str, Any] = {"effort": None, "summary": None}
    store: bool = False
    temperature: float | None = None
    text: dict[str, Any] = {"format": {"type": "text"}}
    tool_choice: str | dict[str, Any] = "auto"
    tools: list[dict[str, Any]] = []
    top_p: float | None = None
    truncation: Literal["disabled"] = "disabled"
    usage: ResponseUsage | None = None
    user: str | None = None

    @classmethod
    def of_completion(cls, request: ResponsesRequest, completion: ChatCompletion) -> ResponseObject:
        """A finished chat completion (one choice) as a response: its text as a message, its calls as
        function_call items; cut by max_output_tokens, it is `incomplete`, as on OpenAI."""
        choice = completion.choices[0]
        key = completion.id.removeprefix("chatcmpl-")
        output: list[Any] = []
        status = "incomplete" if choice.finish_reason == "length" else "completed"  # cut by max_output_tokens
        if choice.message.content or not choice.message.tool_calls:
            text = OutputText(text=choice.message.content or "")
            output.append(OutputMessage(id=f"msg_{key}", status=status, content=[text]))
        for call in choice.message.tool_calls or []:
            output.append(OutputFunctionCall(id=f"fc_{call.id.removeprefix('call_')}", status=status, call_id=call.id,
                                             name=call.function.name, arguments=call.function.arguments))
        usage = completion.usage
        return cls(
            id=f"resp_{key}", created_at=completion.created, model=completion.model, output=output,
            usage=ResponseUsage(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens,
                                total_tokens=usage.total_tokens),
            **finished(choice.finish_reason), **request.echo(),
        )


def finished(finish_reason: str | None) -> dict[str, Any]:
    """A response's status for the way its choice finished."""
    if finish_reason == "length":
        return {"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}}
    return {"status": "completed"}
