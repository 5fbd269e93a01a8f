"""The local engine: transformers + peft in this process, one worker thread that owns the model.

Requests wait in a bounded queue and are decoded one at a time by the worker with the model's KV cache;
tokens travel back to the event loop through `loop.call_soon_threadsafe`. Adapter loads, activations
and unloads are queued to the same worker ahead of waiting requests, so each runs between two requests
and no request ever sees half a swap.

Length: over 400 lines because lifecycle, decoding and adapter swaps all share the one worker
thread's queue and model state; split apart, each part would reach into the others' privates.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import itertools
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from service.serving.engines.base import (
    AdapterInfo,
    Engine,
    FinishReason,
    GenerationChunk,
    GenerationRequest,
    TokenLogprob,
    ToolSpec,
    Usage,
    wait_for_requests_on,
)
from service.serving.engines.registry import AdapterRegistry
from service.serving.engines.structured import GrammarCompiler, TokenConstraint
from service.serving.engines.tools import check_tool_format, forced_call_grammar, split_tool_calls, template_tool_format
from service.serving.engines.sampling import (
    IncrementalDetokenizer,
    TokenBytes,
    penalized_logits,
    sample_next_token,
    stop_cut,
    token_logprobs,
)
from service.adapter_check import check_adapter, check_fits_model
from service.errors import (
    AdapterError,
    EngineError,
    EngineNotReadyError,
    InvalidRequestError,
    QueueFullError,
    ReverieError,
)

log = logging.getLogger(__name__)

# Control work (adapter swaps, shutdown) jumps ahead of waiting requests; the counter keeps FIFO order
# within a priority and spares the queue from comparing payloads.
_STOP, _CONTROL, _REQUEST = 0, 1, 2


@dataclass(eq=False)
class _Job:
    """One generation request as the worker sees it."""

    request: GenerationRequest
    prompt_ids: list[int]
    loop: asyncio.AbstractEventLoop
    adapter: str | None = None  # pinned at admission: a swap while it waits does not change it
    grammar: str | None = None  # the compiled response_format, if any
    out: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)

    def send(self, item: GenerationChunk | BaseException) -> None:
        """Hand a chunk or an error to the consumer; a closed loop means nobody is listening."""
        try:
            self.loop.call_soon_threadsafe(self.out.put_nowait, item)
        except RuntimeError:
            self.cancelled.set()


@dataclass(eq=False)
class _Choice:
    """One of a request's `n` choices while the worker decodes it."""

    index: int
    detok: IncrementalDetokenizer
    constraint: TokenConstraint | None = None  # the response_format's grammar, where one was asked for
    text: str = ""
    emitted: int = 0  # text[:emitted] has been sent
    completion: int = 0  # tokens generated, the end-of-sequence token included
    last_token: int = 0
    finish: FinishReason | None = None
    logprobs: list[TokenLogprob] = field(default_factory=list)  # of tokens whose chunk is not sent yet

    def take(self, length: int, with_logprobs: bool) -> GenerationChunk:
        """The next `length` characters of text and the log-probabilities gathered since the last chunk."""
        chunk = GenerationChunk(
            text=self.text[self.emitted : self.emitted + length], index=self.index,
            logprobs=self.logprobs if with_logprobs else None,
        )
        self.emitted += length
        self.logprobs = []
        return chunk


class LocalEngine(Engine):
    """Serve a Hugging Face causal LM (and PEFT LoRA adapters on it) from this process."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        max_model_len: int | None = None,
        max_queue: int = 64,
        torch_threads: int | None = None,
        device: str = "cpu",
        dtype: torch.dtype | str | None = None,
        drain_timeout_s: float = 300.0,
        chat_template: str | None = None,
    ):
        """`chat_template`: Jinja text used in place of the model's own template (REVERIE_CHAT_TEMPLATE)."""
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue}")
        self._model_path = Path(model_path)
        self._chat_template = chat_template
        self._max_model_len_setting = max_model_len
        self._max_queue = max_queue
        self._drain_timeout_s = drain_timeout_s
        self._torch_threads = torch_threads
        self._device = torch.device(device)
        # CPU kernels for half precision are slow or missing; elsewhere keep the checkpoint's dtype.
        if dtype is None:
            dtype = torch.float32 if self._device.type == "cpu" else "auto"
        self._dtype = dtype

        self._tokenizer: Any = None
        self._base: Any = None  # the transformers model, LoRA layers injected in place once wrapped
        self._peft: Any = None  # the PeftModel wrapping `_base` while at least one adapter is loaded
        self._eos_ids: frozenset[int] = frozenset()
        self._token_bytes: TokenBytes | None = None
        self._grammars: GrammarCompiler | None = None
        self._tool_format: str | None = None  # how the chat template has calls written (tools.py); None: no tools
        self._vocab_size = 0
        self._max_model_len = 0
        self._keep_last_logits = False
        self._cache_arg = "past_key_values"
        self._ready = False

        self._work: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self._pending_lock = threading.Lock()
        self._pending = 0
        self._worker: threading.Thread | None = None
        self._stopping = threading.Event()

        # Loads and activations are written by the worker only, between two requests.
        self._registry = AdapterRegistry()

    # --- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load tokenizer and model off the event loop, then start the worker thread."""
        if self._ready:
            return
        if self._base is None:  # a restart after stop() keeps the model and its adapters
            try:
                await asyncio.to_thread(self._load)
            except Exception as exc:
                raise EngineError(f"could not load model from {self._model_path}: {exc}") from exc
        self._stopping.clear()
        self._worker = threading.Thread(target=self._serve, name="reverie-local-engine", daemon=True)
        self._worker.start()
        self._ready = True

    async def stop(self) -> None:
        """Cancel the running request, fail the waiting ones, and stop the worker."""
        if self._worker is None:
            return
        self._ready = False
        self._stopping.set()
        self._work.put((_STOP, next(self._order), None))
        await asyncio.to_thread(self._worker.join)
        self._worker = None

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def queue_depth(self) -> int:
        return self._pending

    @property
    def max_model_len(self) -> int:
        return self._max_model_len

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    def _load(self) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self._torch_threads:
            torch.set_num_threads(self._torch_threads)
        tokenizer = AutoTokenizer.from_pretrained(self._model_path)
        if self._chat_template is not None:
            tokenizer.chat_template = self._chat_template
        model = AutoModelForCausalLM.from_pretrained(self._model_path, dtype=self._dtype)
        model.to(self._device).eval()

        eos = model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if tokenizer.eos_token_id is not None:
            eos_ids.add(tokenizer.eos_token_id)
        if not eos_ids:
            raise ValueError("neither the tokenizer nor the generation config names an end-of-sequence token")

        self._tokenizer, self._base, self._eos_ids = tokenizer, model, frozenset(eos_ids)
        self._token_bytes = TokenBytes(tokenizer)
        self._grammars = GrammarCompiler(tokenizer, eos_ids)
        self._tool_format = template_tool_format(tokenizer)
        # Ids the tokenizer knows and the model scores (an embedding may be padded beyond the tokenizer).
        self._vocab_size = min(len(tokenizer), model.get_output_embeddings().weight.shape[0])
        self._max_model_len = self._max_model_len_setting or model.config.max_position_embeddings
        # Only the last position's logits are needed; computing all of them for a long prompt costs
        # prompt_len x vocab floats.
        forward_params = inspect.signature(model.forward).parameters
        self._keep_last_logits = "logits_to_keep" in forward_params
        # transformers 5.x renames `past_key_values` to `cache`; take whichever this model accepts.
        self._cache_arg = "cache" if "cache" in forward_params else "past_key_values"

    # --- prompts -------------------------------------------------------------------------------------

    def _encode(self, messages: list[dict], tools: ToolSpec | None = None) -> list[int]:
        if self._tokenizer is None:
            raise EngineNotReadyError("the engine is not running")
        offered = [dict(tool) for tool in tools.tools] if tools is not None else None
        try:
            text = self._tokenizer.apply_chat_template(
                messages, tools=offered, add_generation_prompt=True, tokenize=False
            )
        except Exception as exc:  # jinja raises its own types for messages the template cannot render
            message = f"messages do not fit the chat template: {exc}"
            raise InvalidRequestError(message, param="messages") from exc
        # The template already wrote the special tokens; adding a BOS again would change the prompt.
        return self._tokenizer(text, add_special_tokens=False)["input_ids"]

    def count_prompt_tokens(self, messages: list[dict], tools: ToolSpec | None = None) -> int:
        return len(self._encode(messages, tools))

    async def check_response_format(self, response_format: Mapping[str, Any]) -> None:
        await self._compile(response_format)

    async def check_tools(self, tools: ToolSpec) -> None:
        await self._tool_grammar(tools)

    async def _tool_grammar(self, tools: ToolSpec) -> str | None:
        """The grammar forcing a call, for tool_choice required or named (None for auto); a template
        without tools is refused first."""
        if self._grammars is None:
            raise EngineNotReadyError("the engine is not running")
        check_tool_format(self._tool_format)
        if not tools.forced:
            return None
        lark = forced_call_grammar(tools)
        compile_lark = self._grammars.compile_lark
        return await asyncio.to_thread(compile_lark, lark, param="tools", what="the function's parameters schema")

    async def _compile(self, response_format: Mapping[str, Any]) -> str:
        """The grammar of `response_format`, compiled off the event loop (a large schema takes a while)."""
        if self._grammars is None:
            raise EngineNotReadyError("the engine is not running")
        return await asyncio.to_thread(self._grammars.compile, response_format)

    # --- generation: event-loop side -----------------------------------------------------------------

    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        """Stream the completion; see `Engine.generate`. With tools offered, each choice's calls are
        parsed out of its text in the template's format (tools.py).

        Raises `QueueFullError`, `InvalidRequestError` or `EngineNotReadyError` before the first chunk,
        and `EngineError` if the model fails mid-way. Closing the iterator (aclose, or cancelling the
        task that awaits it) tells the worker to drop the request at its next token.
        """
        if request.tools is None:
            return self._generate(request, None)
        return split_tool_calls(self._generate(request, request.tools), request.params.n, self._tool_format)

    async def _generate(self, request: GenerationRequest, tools: ToolSpec | None) -> AsyncIterator[GenerationChunk]:
        if not self._ready:
            raise EngineNotReadyError("the engine is not running")
        prompt_ids = self._encode(request.messages, tools)
        max_tokens = request.params.max_tokens
        if max_tokens < 1:
            raise InvalidRequestError("max_tokens must be at least 1", param="max_tokens")
        if len(prompt_ids) + max_tokens > self._max_model_len:
            raise InvalidRequestError(
                f"the prompt has {len(prompt_ids)} tokens and max_tokens is {max_tokens}, together more than "
                f"this model's context of {self._max_model_len} tokens",
                param="max_tokens",
            )
        job = _Job(request, prompt_ids, asyncio.get_running_loop())
        # A forced call's grammar wins over response_format, which shapes text (a forced reply has none).
        if tools is not None:
            job.grammar = await self._tool_grammar(tools)
        if job.grammar is None and request.params.response_format is not None:
            job.grammar = await self._compile(request.params.response_format)
        with self._pending_lock:
            if self._pending >= self._max_queue:
                raise QueueFullError(f"{self._pending} requests are already waiting; retry later")
            self._pending += 1
        # Read the namespace's adapter and count the request in one step: an activation that returned
        # before this line is seen, and an unload waits until this request is done with it.
        job.adapter = self._registry.pin(request.namespace)
        self._work.put((_REQUEST, next(self._order), job))
        try:
            first = True
            while True:
                item = await job.out.get()
                if isinstance(item, BaseException):
                    raise item
                if first:
                    item, first = replace(item, adapter=job.adapter), False
                yield item
                if item.usage is not None:
                    return
        finally:
            job.cancelled.set()
            self._registry.unpin(job.adapter)

    # --- the worker ----------------------------------------------------------------------------------

    def _serve(self) -> None:
        """Worker thread: take control work and requests off the queue until told to stop."""
        if self._torch_threads:
            torch.set_num_threads(self._torch_threads)
        while True:
            priority, _, item = self._work.get()
            if priority == _STOP:
                self._drain()
                return
            if priority == _CONTROL:
                action, future = item
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(action())
                    except BaseException as exc:
                        future.set_exception(exc)
                continue
            with self._pending_lock:
                self._pending -= 1
            if item.cancelled.is_set():
                continue
            try:
                self._run(item)
            except ReverieError as exc:
                item.send(exc)
            except Exception as exc:
                log.exception("generation failed")
                item.send(EngineError(f"generation failed: {type(exc).__name__}: {exc}"))

    def _drain(self) -> None:
        """Fail whatever still waits, so no consumer hangs on a stopped engine."""
        while True:
            try:
                priority, _, item = self._work.get_nowait()
            except queue.Empty:
                return
            if priority == _CONTROL and item[1].set_running_or_notify_cancel():
                item[1].set_exception(EngineNotReadyError("the engine stopped"))
            elif priority == _REQUEST:
                with self._pending_lock:
                    self._pending -= 1
                item.send(EngineNotReadyError("the engine stopped"))

    def _run(self, job: _Job) -> None:
        """Decode one request's choices token by token with the KV cache, streaming text deltas to its
        consumer. The `n` choices are the rows of one batch: they share each forward pass and advance
        together; a finished row keeps being fed until all are done, and its output is ignored."""
        params = job.request.params
        generator = torch.Generator(device=self._device)
        if params.seed is None:
            generator.seed()
        else:
            generator.manual_seed(params.seed)
        extra: dict[str, Any] = {"use_cache": True}
        if self._keep_last_logits:
            extra["logits_to_keep"] = 1

        choices = [_Choice(index, IncrementalDetokenizer(self._decode, job.prompt_ids)) for index in range(params.n)]
        if job.grammar is not None:
            for choice, constraint in zip(choices, self._grammars.constraints(job.grammar, params.n)):
                choice.constraint = constraint
        penalized = bool(params.presence_penalty or params.frequency_penalty)
        counts = bias = None  # made at the first step, sized by the model's output (which may exceed the tokenizer)
        input_ids = torch.tensor([job.prompt_ids] * params.n, device=self._device)
        cache = None
        with torch.inference_mode(), self._adapter_scope(job.adapter):
            while True:
                if job.cancelled.is_set():
                    return
                if self._stopping.is_set():
                    raise EngineNotReadyError("the engine stopped")
                out = self._model(input_ids=input_ids, **{self._cache_arg: cache}, **extra)
                cache = out[self._cache_arg]
                logits = out.logits[:, -1]
                if counts is None and penalized:
                    counts = torch.zeros_like(logits, dtype=torch.float32)
                if bias is None and params.logit_bias:
                    bias = self._bias_vector(params.logit_bias, logits.shape[-1])
                chunks: list[GenerationChunk] = []
                for choice in choices:
                    if choice.finish is None:
                        row = choice.index
                        seen = None if counts is None else counts[row]
                        chunks.append(self._step(choice, logits[row], seen, bias, params, generator))
                if all(choice.finish is not None for choice in choices):
                    usage = Usage(len(job.prompt_ids), sum(choice.completion for choice in choices))
                    chunks[-1] = replace(chunks[-1], usage=usage)
                for chunk in chunks:
                    if chunk.text or chunk.logprobs or chunk.finish_reason:
                        job.send(chunk)
                if chunks[-1].usage is not None:
                    return
                input_ids = torch.tensor([[choice.last_token] for choice in choices], device=self._device)

    def _step(self, choice: _Choice, logits, counts, bias, params, generator) -> GenerationChunk:
        """Choose one choice's next token from its row of `logits`; what of its text is now final.

        Under a response_format the grammar has the last word on which tokens may come (after penalties
        and bias), and a reply whose grammar is complete ends there: nothing may follow it."""
        scored = penalized_logits(
            logits, counts, presence_penalty=params.presence_penalty, frequency_penalty=params.frequency_penalty,
            bias=bias,
        )
        if choice.constraint is not None:
            scored = choice.constraint.mask(scored)
        token = sample_next_token(scored, temperature=params.temperature, top_p=params.top_p, generator=generator)
        choice.completion += 1
        choice.last_token = token
        if counts is not None:
            counts[token] += 1
        if choice.constraint is not None:
            choice.constraint.advance(token)
        if token in self._eos_ids:
            choice.finish = "stop"
        else:
            if params.logprobs is not None:
                choice.logprobs.append(self._logprob_of(logits, token, params.logprobs))
            choice.text += choice.detok.push(token)
            end, stopped = stop_cut(choice.text[choice.emitted :], params.stop)
            if stopped:
                choice.text, choice.finish = choice.text[: choice.emitted + end], "stop"
            elif choice.constraint is not None and choice.constraint.complete:
                choice.finish = "stop"
            elif choice.completion >= params.max_tokens:
                choice.finish = "length"
            elif end:
                return choice.take(end, params.logprobs is not None)
            else:  # the new text may still grow into a stop string or a whole character: hold it
                return GenerationChunk(index=choice.index)
        # Held-back text that never became a stop string is ordinary output.
        chunk = choice.take(len(choice.text) - choice.emitted, params.logprobs is not None)
        return replace(chunk, finish_reason=choice.finish)

    def _logprob_of(self, logits: torch.Tensor, token: int, k: int) -> TokenLogprob:
        logprob, top = token_logprobs(logits, token, k)

        def entry(token_id: int, value: float) -> TokenLogprob:
            text, data = self._token_bytes(token_id)
            return TokenLogprob(token=text, logprob=value, bytes=data)

        return replace(entry(token, logprob), top=tuple(entry(i, v) for i, v in top))

    def _bias_vector(self, logit_bias, size: int) -> torch.Tensor:
        bias = torch.zeros(size, device=self._device)
        for token_id, value in logit_bias.items():
            bias[token_id] = value
        return bias

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    @property
    def _model(self) -> Any:
        return self._peft if self._peft is not None else self._base

    def _adapter_scope(self, adapter: str | None):
        """Select this request's adapter for the duration of its decoding (worker thread only)."""
        if self._peft is None:
            return nullcontext()
        if adapter is None:
            return self._peft.disable_adapter()
        if self._peft.active_adapter != adapter:
            self._peft.set_adapter(adapter, inference_mode=True)
        return nullcontext()

    # --- adapters ------------------------------------------------------------------------------------

    async def _between_requests(self, action: Callable[[], Any]) -> Any:
        """Run `action` on the worker thread before any waiting request, and wait for it."""
        if not self._ready:
            raise EngineNotReadyError("the engine is not running")
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._work.put((_CONTROL, next(self._order), (action, future)))
        return await asyncio.wrap_future(future)

    async def load_adapter(self, name: str, path: str) -> None:
        """Load the PEFT LoRA folder `path` as `name`; it serves nobody until activated.

        Raises `AdapterError` if the name is taken or the folder is not a LoRA for this base model; the
        engine then serves exactly as before.
        """
        if not name:
            raise AdapterError("adapter name must not be empty", param="name")
        folder = Path(path)
        # Reading the files needs no model access, so it stays off the worker.
        checked = await asyncio.to_thread(check_adapter, folder)
        await self._between_requests(lambda: self._attach(name, folder, checked.weights))

    def _attach(self, name: str, folder: Path, weights: dict[str, torch.Tensor]) -> None:
        """Worker thread: check `weights` against the model, inject the adapter; undo a failed load."""
        from peft import PeftModel

        self._registry.require_new(name)
        check_fits_model(folder, weights, self._base)
        try:
            if self._peft is None:
                self._peft = PeftModel.from_pretrained(
                    self._base, str(folder), adapter_name=name, torch_device=str(self._device)
                )
                self._peft.eval()
            else:
                self._peft.load_adapter(str(folder), adapter_name=name, torch_device=str(self._device))
        except Exception as exc:
            self._detach_partial(name)
            raise AdapterError(f"could not load adapter {name!r} from {folder}: {exc}") from exc
        self._registry.add(name, str(folder))

    def _detach_partial(self, name: str) -> None:
        """Undo a load that failed after peft had started changing the model."""
        if self._peft is not None:
            if name in self._peft.peft_config:
                self._peft.delete_adapter(name)
            return
        # The first load failed inside PeftModel.from_pretrained, which injects LoRA layers into the base
        # model in place before reading weights: swap every injected layer back for the original.
        from peft.tuners.tuners_utils import BaseTunerLayer

        for module_name, module in list(self._base.named_modules()):
            if isinstance(module, BaseTunerLayer):
                parent_name, _, child = module_name.rpartition(".")
                setattr(self._base.get_submodule(parent_name), child, module.get_base_layer())
        if hasattr(self._base, "peft_config"):
            del self._base.peft_config

    async def activate_adapter(self, namespace: str, name: str | None) -> None:
        """Serve `namespace` with adapter `name` (None: the base model) from the next request on."""

        await self._between_requests(lambda: self._registry.activate(namespace, name))

    async def unload_adapter(self, name: str) -> None:
        """Free adapter `name` once the requests admitted on it are done; refused while any namespace is
        served by it, and `EngineError` if those requests outlast the drain timeout."""

        self._registry.require_unused(name)
        # No namespace points at it any more, so no new request can pin it; wait for those that did.
        await wait_for_requests_on(name, lambda: self._registry.requests_on(name), self._drain_timeout_s)

        def unload() -> None:
            self._registry.require_unused(name)
            if self._registry.requests_on(name):  # re-activated and used again while this call waited
                raise AdapterError(f"adapter {name!r} is in use again; not unloaded")
            if len(self._registry) == 1:
                # peft keeps no sensible state without adapters; go back to the plain base model.
                self._base = self._peft.unload()
                self._peft = None
            else:
                if self._peft.active_adapter == name:  # otherwise peft warns while picking another
                    self._peft.set_adapter(next(a for a in self._registry.names() if a != name), inference_mode=True)
                self._peft.delete_adapter(name)
            self._registry.remove(name)

        await self._between_requests(unload)

    def active_adapter(self, namespace: str) -> str | None:
        return self._registry.serving(namespace)

    def loaded_adapters(self) -> list[AdapterInfo]:
        return self._registry.infos()
