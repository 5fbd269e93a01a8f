"""The vLLM engine: an HTTP client of a vLLM OpenAI server that only Reverie talks to.

vLLM runs with `--enable-lora` and `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True` on a private address. Each
namespace is served by an adapter name (`mem-<namespace>-v<N>`) or by the base model; the mapping lives
here, so switching a namespace to a new version is one dict swap, and a request keeps the model name it
started with. Adapters are loaded once under a new name (vLLM's same-name reload is unreliable), warmed
up with a one-token request before they can be activated, and unloaded only after the requests that use
them have drained.

The prompt is templated and counted with the model's own tokenizer in this process (the interface asks
for a synchronous count); vLLM's `usage` is what gets recorded.

Length: over 400 lines because one client owns vLLM's health, its stream, its LoRA endpoints and the
restore after a vLLM restart, which all share the connection and the per-adapter locks.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from service.adapter_naming import is_night_adapter
from service.serving.engines.base import (
    AdapterInfo,
    Engine,
    FinishReason,
    GenerationChunk,
    GenerationRequest,
    TokenLogprob,
    ToolCall,
    ToolSpec,
    Usage,
    wait_for_requests_on,
)
from service.serving.engines.registry import AdapterRegistry
from service.serving.engines.tools import call_id, check_tool_format, template_tool_format
from service.errors import (
    AdapterError,
    EngineError,
    EngineNotReadyError,
    InvalidRequestError,
    QueueFullError,
)

log = logging.getLogger(__name__)

_WARMUP_MESSAGES = [{"role": "user", "content": "Hello"}]


def served_base(models: list[dict], wanted: str | None) -> dict:
    """The base model in vLLM's `/v1/models` list that requests name: `wanted` (its --served-model-name),
    else the one base it serves (a LoRA lists a `parent`). ValueError says why there is none."""
    bases = [m for m in models if not m.get("parent")]
    if wanted:
        base = next((m for m in bases if m["id"] == wanted), None)
        if base is None:
            raise ValueError(f"does not serve {wanted!r} (it serves: {', '.join(m['id'] for m in bases) or 'none'})")
        return base
    if len(bases) != 1:
        raise ValueError(f"serves {len(bases)} base models; set the served model name")
    return bases[0]


class VLLMEngine(Engine):
    """Serve chat completions and LoRA adapters through a vLLM OpenAI server at `base_url`."""

    def __init__(
        self,
        base_url: str,
        *,
        tokenizer_path: str | Path,
        served_model_name: str | None = None,
        api_key: str | None = None,
        max_model_len: int | None = None,
        max_queue: int = 64,
        start_timeout_s: float = 300.0,
        read_timeout_s: float = 300.0,
        drain_timeout_s: float = 300.0,
        health_interval_s: float = 5.0,
        unresponsive_after_s: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
        chat_template: str | None = None,
    ):
        """
        Args:
            base_url: the vLLM server, e.g. `http://127.0.0.1:8001` (no `/v1`).
            tokenizer_path: HF folder (or id) of the served model, for templating and counting prompts.
            served_model_name: vLLM's `--served-model-name`; default: the one base model vLLM lists.
            api_key: vLLM's `--api-key`, if it was started with one.
            max_model_len: a context cap below vLLM's own; default: vLLM's `max_model_len`.
            max_queue: requests in flight beyond this get `QueueFullError` (429).
            start_timeout_s: how long `start` waits for vLLM's `/health`.
            read_timeout_s: the longest silence tolerated between two streamed chunks.
            drain_timeout_s: how long `unload_adapter` waits for the adapter's requests to finish.
            health_interval_s: how often `ready` is refreshed from `/health` once started.
            unresponsive_after_s: how long `/health` may go unanswered before vLLM counts as down; a
                refused connection or an unhealthy answer counts at once.
            transport: an httpx transport in place of the network (tests with a fake vLLM).
            chat_template: Jinja text in place of the folder's template (REVERIE_CHAT_TEMPLATE), for
                counting prompts and checking tools; vLLM must be started with the same file
                (`--chat-template`).
        """
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue}")
        self._base_url = base_url.rstrip("/").removesuffix("/v1")
        self._tokenizer_path = tokenizer_path
        self._chat_template = chat_template
        self._served_name_setting = served_model_name
        self._api_key = api_key
        self._max_model_len_setting = max_model_len
        self._max_queue = max_queue
        self._start_timeout_s = start_timeout_s
        self._read_timeout_s = read_timeout_s
        self._drain_timeout_s = drain_timeout_s
        self._health_interval_s = health_interval_s
        self._unresponsive_after_s = unresponsive_after_s
        self._transport = transport

        self._client: httpx.AsyncClient | None = None
        self._tokenizer: Any = None
        self._served_name = ""
        self._max_model_len = 0
        self._ready = False
        self._watcher: asyncio.Task | None = None
        self._restore_needed = False  # vLLM may have lost adapters (it restarted); the watcher reloads them

        self._registry = AdapterRegistry()  # an adapter is recorded once loaded and warmed up
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)  # one per adapter name

    # --- lifecycle -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the tokenizer, wait for vLLM's `/health`, and read its model list."""
        if self._ready:
            return
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                path = str(self._tokenizer_path)
                tokenizer = await asyncio.to_thread(AutoTokenizer.from_pretrained, path)
                if self._chat_template is not None:
                    tokenizer.chat_template = self._chat_template
                self._tokenizer = tokenizer
            except Exception as exc:
                raise EngineError(f"could not load the tokenizer from {self._tokenizer_path}: {exc}") from exc
        if self._client is None:
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            self._client = httpx.AsyncClient(
                base_url=self._base_url,
                headers=headers,
                transport=self._transport,
                timeout=httpx.Timeout(30.0, read=self._read_timeout_s),
                limits=httpx.Limits(max_connections=self._max_queue + 8, max_keepalive_connections=16),
            )
        await self._wait_healthy()
        await self._read_models()
        self._ready = True
        self._watcher = asyncio.create_task(self._watch_health(), name="vllm-health")

    async def stop(self) -> None:
        self._ready = False
        if self._watcher is not None:
            self._watcher.cancel()
            try:
                await self._watcher
            except (asyncio.CancelledError, Exception):
                pass
            self._watcher = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def queue_depth(self) -> int:
        return self._registry.requests()

    @property
    def max_model_len(self) -> int:
        return self._max_model_len

    @property
    def vocab_size(self) -> int:
        return len(self._tokenizer) if self._tokenizer is not None else 0

    @property
    def served_model_name(self) -> str:
        """vLLM's name for the base model."""
        return self._served_name

    async def _healthy(self) -> bool:
        return await self._probe() is True

    async def _probe(self) -> bool | None:
        """`/health`: True if vLLM answered healthy, False if it refused or answered unhealthy, None if
        no answer came in time."""
        try:
            return (await self._client.get("/health", timeout=5.0)).status_code == 200
        except httpx.TimeoutException:
            return None
        except httpx.HTTPError:
            return False

    async def _wait_healthy(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._start_timeout_s
        while not await self._healthy():
            if loop.time() > deadline:
                raise EngineNotReadyError(
                    f"vLLM at {self._base_url} did not become healthy within {self._start_timeout_s:.0f} s"
                )
            await asyncio.sleep(0.5)

    async def _read_models(self) -> None:
        """Find the base model and its context length; adopt adapters an earlier run left loaded."""
        models = (await self._call("GET", "/v1/models"))["data"]
        try:
            base = served_base(models, self._served_name_setting)
        except ValueError as exc:
            raise EngineError(f"vLLM at {self._base_url} {exc}") from None
        self._served_name = base["id"]
        served_len = int(base.get("max_model_len") or 0) or self._tokenizer.model_max_length
        self._max_model_len = min(filter(None, (served_len, self._max_model_len_setting)))
        # vLLM lists a runtime-loaded LoRA with `parent` = the base and `root` = its folder. A vLLM that
        # outlived a restart of this service still holds them; loading them again would fail. A night's
        # private adapters (a worker generating through vLLM) are the worker's: never adopted, so never
        # routed, listed or restored here.
        for model in models:
            if is_night_adapter(model["id"]):
                continue
            if model.get("parent") == self._served_name and model["id"] not in self._registry:
                self._registry.add(model["id"], model.get("root") or "")
                log.info("adopted adapter %s already loaded in vLLM", model["id"])

    async def _watch_health(self) -> None:
        """Keep `ready` in step with vLLM's `/health`, so /readyz and admission see an outage.

        A vLLM that comes back after an outage may be a new process that forgot the adapters; they are
        loaded again (into that fresh process, so not a reload in place) until all are back.
        """
        loop = asyncio.get_running_loop()
        silent_since: float | None = None
        while True:
            await asyncio.sleep(self._health_interval_s)
            probe = await self._probe()
            if probe is None:
                # No answer in time is a busy vLLM (or a busy event loop here: a night training in this
                # process) more often than a dead one; refusing requests for it turned a slow minute into
                # 503s. Only a long silence counts as an outage.
                silent_since = silent_since if silent_since is not None else loop.time()
                if loop.time() - silent_since < self._unresponsive_after_s:
                    continue
            else:
                silent_since = None
            healthy = probe is True
            if healthy != self._ready:
                log.warning("vLLM at %s is %s", self._base_url, "healthy again" if healthy else "not healthy")
                self._restore_needed = self._restore_needed or healthy
            self._ready = healthy
            if healthy and self._restore_needed:
                try:
                    await self._restore_adapters()
                    self._restore_needed = False
                except Exception:
                    log.exception("could not restore the adapters in vLLM; retrying")

    async def _restore_adapters(self) -> None:
        listed = {m["id"] for m in (await self._call("GET", "/v1/models"))["data"]}
        for name, path in self._registry.paths().items():
            if name in listed or not path:
                continue
            async with self._locks[name]:
                try:
                    body = {"lora_name": name, "lora_path": path}
                    await self._call("POST", "/v1/load_lora_adapter", json=body)
                except InvalidRequestError as exc:  # another client restored it first, or the folder is gone
                    log.warning("adapter %s not restored: %s", name, exc.message)
                    continue
                await self._warm_up(name)
            log.info("restored adapter %s in vLLM", name)

    # --- prompts -------------------------------------------------------------------------------------

    def count_prompt_tokens(self, messages: list[dict], tools: ToolSpec | None = None) -> int:
        if self._tokenizer is None:
            raise EngineNotReadyError("the engine is not running")
        offered = _sent_tools(tools) if tools is not None else None  # as vLLM will render them
        try:
            text = self._tokenizer.apply_chat_template(
                messages, tools=offered, add_generation_prompt=True, tokenize=False
            )
        except Exception as exc:  # jinja raises its own types for messages the template cannot render
            message = f"messages do not fit the chat template: {exc}"
            raise InvalidRequestError(message, param="messages") from exc
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    async def check_tools(self, tools: ToolSpec) -> None:
        """vLLM renders whatever template it has and never refuses tools; the template is the model
        folder's, as for counting, so one that ignores tools is refused here, as on the local engine.
        The call format is vLLM's --tool-call-parser's business."""
        if self._tokenizer is None:
            raise EngineNotReadyError("the engine is not running")
        if template_tool_format(self._tokenizer) is None:
            check_tool_format(None)

    # --- generation ----------------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        """Stream the completion from vLLM; see `Engine.generate`.

        Raises `QueueFullError`, `InvalidRequestError` (vLLM's 400, e.g. a prompt over the context) or
        `EngineNotReadyError` (vLLM unreachable) before the first chunk, and `EngineError` for vLLM's
        5xx or a stream that breaks. Closing the iterator closes the upstream stream; vLLM then aborts
        the request.
        """
        if not self._ready or self._client is None:
            raise EngineNotReadyError("the engine is not running")
        if self._registry.requests() >= self._max_queue:
            raise QueueFullError(f"{self._max_queue} requests are already in flight; retry later")
        # Read the alias and count the request in one step: an activation that returned before this
        # line is seen, and an unload waits for this request to finish.
        adapter = self._registry.pin(request.namespace)
        try:
            first = True
            async for chunk in self._stream(adapter or self._served_name, request):
                if first:
                    chunk, first = replace(chunk, adapter=adapter), False
                yield chunk
        finally:
            self._registry.unpin(adapter)

    def _payload(self, model: str, request: GenerationRequest) -> dict:
        params = request.params
        payload: dict[str, Any] = {
            "model": model,
            "messages": [_openai_message(message) for message in request.messages],
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if params.seed is not None:
            payload["seed"] = params.seed
        if params.stop:
            payload["stop"] = list(params.stop)
        # vLLM 0.32 applies these with OpenAI's meanings; only what was asked for is sent.
        if params.presence_penalty:
            payload["presence_penalty"] = params.presence_penalty
        if params.frequency_penalty:
            payload["frequency_penalty"] = params.frequency_penalty
        if params.logit_bias:
            payload["logit_bias"] = {str(token_id): bias for token_id, bias in params.logit_bias.items()}
        if params.logprobs is not None:
            payload["logprobs"] = True
            payload["top_logprobs"] = params.logprobs
        if params.n > 1:
            payload["n"] = params.n
        if params.response_format is not None:
            # OpenAI's shape is vLLM's: json_object and json_schema become its own structured outputs.
            payload["response_format"] = dict(params.response_format)
        if request.tools is not None:
            # vLLM renders them through the template and parses calls with its --tool-call-parser; "auto"
            # needs --enable-auto-tool-choice, required and named are its own guided decoding (of the
            # arguments only for strict functions: `_sent_tools`).
            tools = request.tools
            payload["tools"] = _sent_tools(tools)
            named = {"type": "function", "function": {"name": tools.function}}
            payload["tool_choice"] = named if tools.function else tools.choice
            payload["parallel_tool_calls"] = tools.parallel
        return payload

    async def _stream(self, model: str, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        try:
            payload = self._payload(model, request)
            async with self._client.stream("POST", "/v1/chat/completions", json=payload) as resp:
                if resp.status_code != 200:
                    await resp.aread()
                    if resp.status_code == 404 and model in self._registry:
                        # vLLM restarted between two health checks and forgot the adapter.
                        self._restore_needed = True
                        raise EngineError(f"vLLM does not know adapter {model!r} (any more); reloading it")
                    raise self._http_error(resp, f"vLLM refused the request for {model!r}")
                n = request.params.n
                texts, logprobs = [""] * n, [[] for _ in range(n)]
                finish: list[str | None] = [None] * n
                calls: list[dict[int, dict]] = [{} for _ in range(n)]  # per choice, vLLM's call index: the call so far
                usage = None
                async for event in _sse_events(resp):
                    if "error" in event or event.get("object") == "error":
                        raise EngineError(f"vLLM failed mid-stream: {_error_message(event)}")
                    for choice in event.get("choices") or []:  # vLLM's usage chunk has `choices: null`
                        index = int(choice.get("index") or 0)
                        if not 0 <= index < n:
                            raise EngineError(f"vLLM sent choice {index} of a request for {n}")
                        delta = choice.get("delta") or {}
                        texts[index] += delta.get("content") or ""
                        _add_call_pieces(calls[index], delta.get("tool_calls"))
                        logprobs[index] += _token_logprobs(choice.get("logprobs"))
                        finish[index] = choice.get("finish_reason") or finish[index]
                        if finish[index] is None and (texts[index] or logprobs[index]):
                            yield self._chunk(request, index, texts[index], logprobs[index])
                            texts[index], logprobs[index] = "", []
                    if event.get("usage"):
                        usage = event["usage"]
                # The finish reasons arrive before the usage chunk; each choice's last chunk is held until
                # then, and the last of them carries the usage.
                if None in finish:
                    raise EngineError("vLLM ended the stream without a finish reason")
                for index in range(n):
                    last = self._chunk(request, index, texts[index], logprobs[index])
                    # A call's arguments come in pieces; it is whole only once its choice has finished.
                    last.tool_calls = [_tool_call(calls[index][number]) for number in sorted(calls[index])] or None
                    last.finish_reason = _finish_reason(finish[index], called=last.tool_calls is not None)
                    if index == n - 1:
                        last.usage = Usage(
                            prompt_tokens=int((usage or {}).get("prompt_tokens") or 0),
                            completion_tokens=int((usage or {}).get("completion_tokens") or 0),
                        )
                    yield last
        except httpx.ConnectError as exc:
            self._ready = False
            raise EngineNotReadyError(f"vLLM at {self._base_url} is unreachable: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise EngineError(f"vLLM did not answer within {self._read_timeout_s:.0f} s") from exc
        except httpx.HTTPError as exc:
            raise EngineError(f"the connection to vLLM broke: {type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _chunk(request: GenerationRequest, index: int, text: str, logprobs: list[TokenLogprob]) -> GenerationChunk:
        wanted = request.params.logprobs is not None
        return GenerationChunk(text=text, index=index, logprobs=logprobs if wanted else None)

    # --- adapters ------------------------------------------------------------------------------------

    async def load_adapter(self, name: str, path: str) -> None:
        """Load the PEFT LoRA folder `path` (as vLLM's host sees it) under `name`, then warm it up.

        A name is loaded once: `AdapterError` if it is taken (published adapters get a new name), or if
        vLLM refuses the folder (not a LoRA, wrong base, rank above `--max-lora-rank`); vLLM then serves
        exactly as before. An adapter vLLM already holds under this name from this very folder (loaded
        by an earlier run of this service, or by another replica sharing the vLLM) is used as it is.
        """
        if not name:
            raise AdapterError("adapter name must not be empty", param="name")
        if name == self._served_name:
            raise AdapterError(f"{name!r} is the base model's name", param="name")
        self._require_client()
        async with self._locks[name]:
            if self._registry.path(name) == str(path):
                return
            self._registry.require_new(name)
            ours = True
            try:
                body = {"lora_name": name, "lora_path": str(path)}
                await self._call("POST", "/v1/load_lora_adapter", json=body)
            except (InvalidRequestError, EngineError) as exc:  # not EngineNotReadyError: vLLM is down
                # Another API replica sharing this vLLM may have loaded the same version first.
                ours = False
                if not await self._held_by_vllm(name, str(path)):
                    message = f"vLLM could not load adapter {name!r} from {path}: {exc.message}"
                    raise AdapterError(message) from exc
            try:
                await self._warm_up(name)
            except Exception as exc:
                if ours:
                    await self._forget_in_vllm(name)
                message = f"adapter {name!r} from {path} loaded but failed its first request: {exc}"
                raise AdapterError(message) from exc
            self._registry.add(name, str(path))

    async def _held_by_vllm(self, name: str, path: str) -> bool:
        """Whether vLLM already serves adapter `name` from folder `path`."""
        try:
            models = (await self._call("GET", "/v1/models"))["data"]
        except EngineError:
            return False
        return any(m["id"] == name and m.get("root") == path for m in models)

    async def _warm_up(self, name: str) -> None:
        """One greedy token through the adapter, so its first real request pays no load cost."""
        await self._call(
            "POST",
            "/v1/chat/completions",
            json={"model": name, "messages": _WARMUP_MESSAGES, "max_tokens": 1, "temperature": 0},
        )

    async def activate_adapter(self, namespace: str, name: str | None) -> None:
        """Serve `namespace` with adapter `name` (None: the base model) from the next request on.

        Requests already running finish on the model they started with.
        """
        self._registry.activate(namespace, name)

    async def unload_adapter(self, name: str) -> None:
        """Unload adapter `name` once its running requests finished; refused while it serves a namespace."""
        self._require_client()
        async with self._locks[name]:
            self._registry.require_unused(name)
            path = self._registry.remove(name)  # from here on it cannot be activated again
            try:
                await self._drain(name)
                await self._forget_in_vllm(name, strict=True)
            except BaseException:
                self._registry.add(name, path)
                raise

    async def _drain(self, name: str) -> None:
        await wait_for_requests_on(name, lambda: self._registry.requests_on(name), self._drain_timeout_s)

    async def _forget_in_vllm(self, name: str, *, strict: bool = False) -> None:
        try:
            await self._call("POST", "/v1/unload_lora_adapter", json={"lora_name": name})
        except InvalidRequestError:
            pass  # vLLM does not know the name (it restarted): nothing to unload
        except EngineError:
            if strict:
                raise
            log.exception("could not unload adapter %s from vLLM", name)

    def active_adapter(self, namespace: str) -> str | None:
        return self._registry.serving(namespace)

    def loaded_adapters(self) -> list[AdapterInfo]:
        return self._registry.infos()

    # --- HTTP ----------------------------------------------------------------------------------------

    def _require_client(self) -> None:
        if self._client is None:
            raise EngineNotReadyError("the engine is not running")

    async def _call(self, method: str, path: str, **kwargs) -> Any:
        """One non-streaming request to vLLM; its errors become ours."""
        self._require_client()
        try:
            resp = await self._client.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise EngineNotReadyError(f"vLLM at {self._base_url} is unreachable: {exc}") from exc
        except httpx.HTTPError as exc:
            raise EngineError(f"{method} {path} to vLLM failed: {type(exc).__name__}: {exc}") from exc
        if resp.status_code != 200:
            raise self._http_error(resp, f"{method} {path}")
        try:
            return resp.json()
        except ValueError:
            return resp.text  # the LoRA endpoints answer in plain text

    @staticmethod
    def _http_error(resp: httpx.Response, what: str) -> InvalidRequestError | EngineError:
        try:
            body = resp.json()
        except ValueError:
            body = {"message": resp.text}
        message = _error_message(body)
        if 400 <= resp.status_code < 500:
            param = (body.get("error") or body).get("param") if isinstance(body, dict) else None
            error: InvalidRequestError | EngineError = InvalidRequestError(message, param=param)
            if "maximum context length" in message:
                error.code = "context_length_exceeded"
            return error
        if resp.status_code == 503:
            return EngineNotReadyError(f"{what}: vLLM is not ready: {message}")
        return EngineError(f"{what}: vLLM answered {resp.status_code}: {message}")


async def _sse_events(resp: httpx.Response) -> AsyncIterator[dict]:
    """The JSON payloads of a server-sent event stream, up to `[DONE]`."""
    async for line in resp.aiter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            yield json.loads(data)
        except ValueError as exc:
            raise EngineError(f"vLLM sent a malformed stream line: {data[:200]!r}") from exc


def _error_message(body: Any) -> str:
    """vLLM's error text, whether it sent `{"error": {"message"}}`, `{"message"}` or plain text."""
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict):
            return str(inner.get("message") or inner)
        if isinstance(inner, str):
            return inner
        if body.get("message"):
            return str(body["message"])
        if body.get("detail"):
            return str(body["detail"])
    return str(body)[:500]


def _token_logprobs(logprobs: dict | None) -> list[TokenLogprob]:
    """A stream chunk's `logprobs.content` (OpenAI's shape, as vLLM sends it) as the engine's type."""

    def entry(item: dict, top=()) -> TokenLogprob:
        data = item.get("bytes")
        return TokenLogprob(
            token=item.get("token") or "", logprob=float(item.get("logprob", -9999.0)),
            bytes=None if data is None else tuple(data), top=tuple(top),
        )

    return [
        entry(item, (entry(alt) for alt in item.get("top_logprobs") or []))
        for item in (logprobs or {}).get("content") or []
    ]


def _finish_reason(reason: str, called: bool) -> FinishReason:
    """vLLM's reason as the local engine gives it: a choice that made calls and stopped by itself
    finishes with "tool_calls" (vLLM 0.32 says "stop" after a named function's call)."""
    if reason == "length":
        return "length"
    return "tool_calls" if called or reason == "tool_calls" else "stop"


def _sent_tools(tools: ToolSpec) -> list[dict]:
    """The tools as vLLM is sent them (and renders them into the prompt): for tool_choice required or
    named, every function `strict`. With its Hermes parser, vLLM 0.32 forces only a call's envelope and
    pins the arguments of strict functions alone, so SmolLM2 wrote arguments outside the schema (or never
    closed them); a forced call's arguments match its schema, as on the local engine, whatever `strict`
    the client gave."""
    if not tools.forced:
        return [dict(tool) for tool in tools.tools]
    return [{**tool, "function": {**tool["function"], "strict": True}} for tool in tools.tools]


def _openai_message(message: dict) -> dict:
    """A message as OpenAI's API (and so vLLM's) takes it: a call's arguments as JSON text, where the
    chat template and the store keep them as an object."""
    if not message.get("tool_calls"):
        return message
    calls = []
    for call in message["tool_calls"]:
        arguments = call["function"]["arguments"]
        text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        calls.append({**call, "function": {**call["function"], "arguments": text}})
    return {**message, "tool_calls": calls}


def _add_call_pieces(calls: dict[int, dict], pieces: list[dict] | None) -> None:
    """Gather a stream's `delta.tool_calls` pieces: the first of a call has its id and name, the
    next ones more of its arguments' text."""
    for piece in pieces or []:
        call = calls.setdefault(int(piece.get("index") or 0), {"id": None, "name": "", "arguments": ""})
        function = piece.get("function") or {}
        call["id"] = piece.get("id") or call["id"]
        call["name"] += function.get("name") or ""
        call["arguments"] += function.get("arguments") or ""


def _tool_call(call: dict) -> ToolCall:
    if not call["name"]:
        raise EngineError("vLLM streamed a tool call without a function name")
    return ToolCall(id=call["id"] or call_id(), name=call["name"], arguments=call["arguments"] or "{}")
