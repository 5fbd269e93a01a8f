"""The engine interface between the API and a model: generate, list, and swap adapters.

The API never imports torch; it talks to an `Engine`. `local` runs transformers + peft in process,
`vllm` proxies a vLLM OpenAI server.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from service.errors import EngineError

FinishReason = Literal["stop", "length", "tool_calls"]


@dataclass(frozen=True)
class ToolSpec:
    """The tools a request offers the model, and what it must do with them.

    `tools` are OpenAI's function tools (`{"type": "function", "function": {"name", "description",
    "parameters"}}`), handed to the chat template. `choice` is "auto" (the model decides between text and
    calls) or "required" (at least one call); `function` names the one function it must call (OpenAI's
    named tool_choice), and `parallel` whether a reply may hold more than one call. tool_choice "none" is
    no ToolSpec at all: the template is not offered the tools.
    """

    tools: tuple[Mapping[str, Any], ...]
    choice: Literal["auto", "required"] = "auto"
    function: str | None = None
    parallel: bool = True

    @property
    def forced(self) -> bool:
        """Whether the reply must be tool calls (required or a named function)."""
        return self.choice == "required" or self.function is not None


@dataclass(frozen=True)
class ToolCall:
    """One function call of a reply: `arguments` is the JSON text of the arguments object."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class SamplingParams:
    """How to decode, with OpenAI's meanings. `temperature == 0` means greedy.

    Before each token is chosen, token j's logit is lowered by `frequency_penalty` times the times j was
    generated so far in this choice, and by `presence_penalty` once j was generated at all (the prompt
    does not count), and raised by `logit_bias[j]`. `logprobs` is None for no log-probabilities, or k for
    the chosen token's plus the k most likely ones at each step, taken from the model's own distribution
    (before penalties, biases and temperature, as vLLM reports them by default), for every generated
    token but the end-of-sequence one (a stop string's tokens keep theirs). `n` choices are generated
    for one prompt; with a seed, they differ from one another and are reproduced together.

    `response_format` is None for free text, or OpenAI's `{"type": "json_object"}` or
    `{"type": "json_schema", "json_schema": {"name", "schema", ...}}`: every choice is then decoded under
    that grammar, so it parses and matches the schema, unless `max_tokens` cuts it first (finish reason
    "length", as on OpenAI).
    """

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: Mapping[int, float] = field(default_factory=dict)
    logprobs: int | None = None
    n: int = 1
    response_format: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class GenerationRequest:
    messages: list[dict]
    params: SamplingParams
    namespace: str = "default"
    tools: ToolSpec | None = None


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class TokenLogprob:
    """One token's text, its exact UTF-8 bytes (None when unknown) and log-probability; for a generated
    token, also the most likely tokens at its step, most likely first."""

    token: str
    logprob: float
    bytes: tuple[int, ...] | None = None
    top: tuple[TokenLogprob, ...] = ()


@dataclass
class GenerationChunk:
    """One step of one choice (`index`): new text, and the log-probabilities of the tokens it came from
    when asked for. A choice's last chunk carries its finish reason; the last chunk of the whole
    generation also carries the usage of all choices (prompt counted once)."""

    text: str = ""
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    # On the first chunk: the adapter this request was pinned to when it was admitted (None: the base
    # model). A swap never changes a request already admitted, so this is what answered it.
    adapter: str | None = None
    index: int = 0
    logprobs: list[TokenLogprob] | None = None
    tool_calls: list[ToolCall] | None = None  # calls completed in this step (whole: id, name, arguments)


@dataclass
class GeneratedChoices:
    """A generation's chunks gathered per choice; the generation is over once `usage` is known."""

    texts: list[list[str]]
    logprobs: list[list[TokenLogprob]] | None  # None: not asked for
    finish: list[FinishReason | None]
    usage: Usage | None = None
    calls: list[list[ToolCall]] = field(default_factory=list)

    @classmethod
    def expecting(cls, n: int, with_logprobs: bool) -> GeneratedChoices:
        logprobs = [[] for _ in range(n)] if with_logprobs else None
        return cls([[] for _ in range(n)], logprobs, [None] * n, calls=[[] for _ in range(n)])

    def add(self, chunk: GenerationChunk) -> None:
        self.texts[chunk.index].append(chunk.text)
        self.calls[chunk.index].extend(chunk.tool_calls or ())
        if self.logprobs is not None and chunk.logprobs:
            self.logprobs[chunk.index].extend(chunk.logprobs)
        if chunk.finish_reason is not None:
            self.finish[chunk.index] = chunk.finish_reason
        if chunk.usage is not None:
            self.usage = chunk.usage

    @property
    def done(self) -> bool:
        return self.usage is not None

    def text(self, index: int) -> str:
        return "".join(self.texts[index])

    def finish_reason(self, index: int) -> FinishReason:
        """A choice's finish reason; "stop" for one the engine ended without saying."""
        return self.finish[index] or "stop"


@dataclass
class AdapterInfo:
    name: str
    path: str
    namespaces: list[str] = field(default_factory=list)


class Engine(abc.ABC):
    """What the API needs from a model server."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Load the model; `ready` turns true when done."""

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @property
    @abc.abstractmethod
    def ready(self) -> bool: ...

    @property
    @abc.abstractmethod
    def max_model_len(self) -> int:
        """Prompt plus completion tokens may not exceed this."""

    @property
    @abc.abstractmethod
    def vocab_size(self) -> int:
        """Token ids a request may name (`logit_bias`) are 0 <= id < vocab_size."""

    @abc.abstractmethod
    def count_prompt_tokens(self, messages: list[dict], tools: ToolSpec | None = None) -> int:
        """Tokens of the chat-templated prompt (with the tools offered), to reject oversized requests
        before queueing."""

    async def check_response_format(self, response_format: Mapping[str, Any]) -> None:
        """Raise `InvalidRequestError` naming `response_format` if this engine cannot enforce it, before
        anything is recorded. By default the model server behind the engine judges it when generating."""

    async def check_tools(self, tools: ToolSpec) -> None:
        """Raise `InvalidRequestError` naming `tools` (or `tool_choice`) if this engine cannot serve them
        (a chat template that does not take tools, a schema it cannot enforce), before anything is
        recorded. By default the model server behind the engine judges it when generating."""

    @abc.abstractmethod
    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        """Stream the completion's `params.n` choices (see `GenerationChunk`); the generation is over
        with the chunk that carries the usage. Raises `QueueFullError` when the engine cannot take more work.

        Closing the iterator early (client gone) cancels the generation.
        """

    @abc.abstractmethod
    async def load_adapter(self, name: str, path: str) -> None:
        """Load a PEFT LoRA folder under `name`; it serves nobody until activated."""

    @abc.abstractmethod
    async def activate_adapter(self, namespace: str, name: str | None) -> None:
        """Serve `namespace` with adapter `name` (None: the base model), atomically between requests."""

    @abc.abstractmethod
    async def unload_adapter(self, name: str) -> None:
        """Forget a loaded adapter; refused while a namespace is served by it."""

    @abc.abstractmethod
    def active_adapter(self, namespace: str) -> str | None:
        """The adapter name serving `namespace` now (None: the base model)."""

    @abc.abstractmethod
    def loaded_adapters(self) -> list[AdapterInfo]: ...

    @property
    def queue_depth(self) -> int:
        """Requests waiting for (or, for a remote engine, in) generation; for metrics."""
        return 0


async def wait_for_requests_on(name: str, running: Callable[[], int], timeout_s: float) -> None:
    """Wait until `running()` (the requests pinned to adapter `name`) is 0, before unloading it.

    Raises `EngineError` if they outlast `timeout_s`; the adapter then stays loaded.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while running():
        if loop.time() > deadline:
            raise EngineError(
                f"adapter {name!r} still has {running()} requests running after {timeout_s:.0f} s; not unloaded"
            )
        await asyncio.sleep(0.02)
