"""The engine interface between the API and a model: generate, list, and swap adapters.

The API never imports torch; it talks to an `Engine`. `local` runs transformers + peft in process,
`vllm` proxies a vLLM OpenAI server.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal

from service.errors import EngineError

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class SamplingParams:
    """How to decode. `temperature == 0` means greedy."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class GenerationRequest:
    messages: list[dict]
    params: SamplingParams
    namespace: str = "default"


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class GenerationChunk:
    """One step of a generation: new text, and on the last chunk the finish reason and usage."""

    text: str = ""
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    # On the first chunk: the adapter this request was pinned to when it was admitted (None: the base
    # model). A swap never changes a request already admitted, so this is what answered it.
    adapter: str | None = None


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

    @abc.abstractmethod
    def count_prompt_tokens(self, messages: list[dict]) -> int:
        """Tokens of the chat-templated prompt, to reject oversized requests before queueing."""

    @abc.abstractmethod
    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        """Stream the completion. Raises `QueueFullError` when the engine cannot take more work.

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
