"""Serving one chat completion: validate, record `pending` while generating, record the final state, reply.

The durable-record rule: the episode's final row (or spool line) is committed before the last byte
of the reply (the JSON body, or the SSE finish chunks and `[DONE]`) is sent.

With `n > 1` every choice is generated and sent, and the episode is the first choice (index 0): its
text and finish reason are what a night learns from, so one request teaches one answer, however many
the client asked to choose from. The episode's token counts are the usage the client was told (all
choices). An Idempotency-Key replays the recorded episode, which holds that one choice's text and no
log-probabilities, so a request with both a key and `n > 1` or `logprobs` is refused rather than
answered by a replay that would drop them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from service.adapter_naming import parse_adapter_name
from service.serving.engines.base import Engine, GeneratedChoices, GenerationChunk, GenerationRequest, Usage
from service.errors import (
    ConflictError, EngineError, EngineNotReadyError, InvalidRequestError, ModelNotFoundError, ReverieError,
    UnprocessableError,
)
from service.serving.protocol import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChoiceLogprobs,
    ChunkChoice,
    DeltaMessage,
    DeltaToolCall,
    ErrorResponse,
    UsageInfo,
    calls_of,
    template_call,
)
from service.serving.poisoning import flags_for
from service.serving.limits import KeyLimiter, RequestLimits
from service.telemetry import Telemetry
from service.serving.recording import Recorder
from service.store.episodes import EpisodeRecord, same_request
from service.store.models import EpisodeStatus, utcnow

log = logging.getLogger(__name__)

def adapter_version(name: str | None) -> int | None:
    """`mem-<namespace>-v<N>` names version N; None is the base model."""
    parsed = parse_adapter_name(name) if name else None
    return parsed[1] if parsed else None


@dataclass
class ChatReply:
    """What the router sends: a finished completion, or a stream of SSE lines."""

    completion: ChatCompletion | None = None
    stream: AsyncIterator[str] | None = None


def sse(payload: str) -> str:
    return f"data: {payload}\n\n"


async def _released_after(stream: AsyncIterator[str], release) -> AsyncIterator[str]:
    try:
        async for line in stream:
            yield line
    finally:
        release()
        await stream.aclose()


class ChatService:
    def __init__(
        self,
        *,
        engine: Engine,
        recorder: Recorder,
        model_name: str,
        default_max_tokens: int,
        limits: RequestLimits | None = None,
        limiter: KeyLimiter | None = None,
        telemetry: Telemetry | None = None,
    ):
        self.engine = engine
        self.recorder = recorder
        self.model_name = model_name
        self.default_max_tokens = default_max_tokens
        self.limits = limits
        self.limiter = limiter or KeyLimiter()
        self.telemetry = telemetry

    async def complete(
        self,
        request: ChatCompletionRequest,
        *,
        namespace: str,
        caller: str = "anonymous",
        idempotency_key: str | None = None,
        conversation_id: str | None = None,
    ) -> ChatReply:
        """Serve one request. `caller` identifies the API key for the per-key limits."""
        if request.model != self.model_name:
            raise ModelNotFoundError(
                f"The model `{request.model}` does not exist; this server serves `{self.model_name}`.", param="model"
            )
        if not self.engine.ready:
            raise EngineNotReadyError("The model is still loading; retry shortly.")
        messages = request.plain_messages()
        tools = request.tool_spec()
        if self.limits is not None:
            self.limits.check(messages, request.requested_max_tokens(), choices=request.n or 1)
        request.check_sampling(vocab_size=self.engine.vocab_size, replayable=bool(idempotency_key))
        # What the engine cannot serve (tools its template does not take, a schema it cannot enforce)
        # is refused before anything is recorded.
        if tools is not None:
            await self.engine.check_tools(tools)
        self._check_length(messages, tools, request)
        if (response_format := request.structured_format()) is not None:
            await self.engine.check_response_format(response_format)
        release = await self.limiter.admit(caller)
        try:
            reply = await self._serve(request, messages, tools, namespace, idempotency_key, conversation_id)
        except BaseException:
            release()
            raise
        if reply.stream is None:
            release()
            return reply
        return ChatReply(stream=_released_after(reply.stream, release))

    async def _serve(self, request, messages, tools, namespace, idempotency_key, conversation_id) -> ChatReply:
        params = request.to_sampling_params(self.default_max_tokens)
        record = EpisodeRecord(
            id=uuid.uuid4(),
            namespace=namespace,
            model=self.model_name,
            messages=messages,
            conversation_id=conversation_id,
            idempotency_key=idempotency_key,
            params=request.recorded_params(),
            adapter_version=adapter_version(self.engine.active_adapter(namespace)),
            flags=flags_for(messages) or None,
        )
        pending = []  # the pending row commits while the first token is computed; nothing is sent before it
        if idempotency_key:
            replay = await self._claim_idempotency_key(record)
            if replay is not None:
                return self._replay(replay, request)
        else:
            pending.append(asyncio.ensure_future(self.recorder.record(record)))

        request_ = GenerationRequest(messages=messages, params=params, namespace=namespace, tools=tools)
        generation = self.engine.generate(request_)
        started = time.perf_counter()
        try:
            # Admission (queue full, bad length) fails here, while an HTTP status can still be sent.
            first = await generation.__anext__()
            # A swap between recording and admission: the episode names the version that answered.
            answered_by = adapter_version(first.adapter)
        except StopAsyncIteration:
            first, answered_by = GenerationChunk(finish_reason="stop", usage=Usage()), record.adapter_version
        except BaseException as exc:
            await asyncio.gather(*pending)  # the failure's record follows the pending one
            await self._fail(record, exc)
            raise self._client_error(exc) from exc
        try:
            await asyncio.gather(*pending)
        except BaseException:  # neither the store nor the spool took it: 503, and the generation stops
            await generation.aclose()
            raise
        record.adapter_version = answered_by
        if self.telemetry is not None:
            self.telemetry.time_to_first_token.observe(time.perf_counter() - started)

        if request.stream:
            return ChatReply(stream=self._stream(request, record, generation, first, started))
        return ChatReply(completion=await self._collect(request, record, generation, first, started))

    # -- checks ------------------------------------------------------------------------------------
    def _check_length(self, messages: list[dict], tools, request: ChatCompletionRequest) -> None:
        prompt_tokens = self.engine.count_prompt_tokens(messages, tools)
        limit = self.engine.max_model_len
        wanted = request.requested_max_tokens() or 0
        if prompt_tokens + max(wanted, 1) > limit:
            param = "max_tokens" if wanted else "messages"
            raise InvalidRequestError(
                f"This model's maximum context length is {limit} tokens. However, you requested "
                f"{prompt_tokens + wanted} tokens ({prompt_tokens} in the messages, {wanted} in the completion).",
                param=param,
                code="context_length_exceeded",
            )

    async def _claim_idempotency_key(self, record: EpisodeRecord) -> EpisodeRecord | None:
        """Return the finished episode to replay, or None after claiming the key for this request."""
        existing = await asyncio.to_thread(self.recorder.claim_idempotency_key, record)
        if existing is None:
            return None
        if not same_request(existing, record):
            raise UnprocessableError(
                "This Idempotency-Key was already used with a different request body; use a new key.",
                param="Idempotency-Key", code="idempotency_key_reused",
            )
        if existing.status == EpisodeStatus.COMPLETE:
            return existing
        raise ConflictError(
            "A request with this Idempotency-Key is still in progress.", param="Idempotency-Key", code="idempotency_conflict"
        )

    # -- replies -----------------------------------------------------------------------------------
    async def _collect(self, request, record, generation, first: GenerationChunk, started: float) -> ChatCompletion:
        choices = GeneratedChoices.expecting(request.n or 1, bool(request.logprobs))
        try:
            chunk = first
            while True:
                choices.add(chunk)
                if choices.done:
                    break
                chunk = await generation.__anext__()
        except StopAsyncIteration:
            pass
        except BaseException as exc:
            record.response = choices.text(0)
            await self._fail(record, exc)
            raise self._client_error(exc) from exc
        finally:
            await generation.aclose()
        await self._finish(record, choices, started)
        return self._completion(record, choices)

    def _completion(self, record: EpisodeRecord, choices: GeneratedChoices | None = None) -> ChatCompletion:
        """The reply: every generated choice, or (a replay) the one the episode holds."""
        if choices is None:
            message = AssistantMessage.of(record.response or "", calls_of(record.tool_calls))
            replies = [Choice(message=message, finish_reason=record.finish_reason)]
        else:
            replies = [
                Choice(
                    index=index,
                    message=AssistantMessage.of(choices.text(index), choices.calls[index]),
                    logprobs=None if choices.logprobs is None else ChoiceLogprobs.of(choices.logprobs[index]),
                    finish_reason=choices.finish_reason(index),
                )
                for index in range(len(choices.texts))
            ]
        return ChatCompletion(
            id=self._response_id(record),
            created=int(record.created_at.timestamp()),
            model=self.model_name,
            choices=replies,
            usage=self._usage(record),
        )

    async def _stream(self, request, record, generation, first: GenerationChunk, started: float):
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        response_id = self._response_id(record)
        created = int(record.created_at.timestamp())
        choices = GeneratedChoices.expecting(request.n or 1, bool(request.logprobs))

        def chunk_json(delta: DeltaMessage, index=0, finish_reason=None, logprobs=None, choices=True, usage=None):
            choice = ChunkChoice(index=index, delta=delta, logprobs=logprobs, finish_reason=finish_reason)
            body = ChatCompletionChunk(
                id=response_id, created=created, model=self.model_name, choices=[choice] if choices else [], usage=usage
            )
            exclude = None if include_usage else {"usage"}
            return sse(body.model_dump_json(exclude=exclude))

        finished = False
        try:
            for index in range(len(choices.texts)):
                yield chunk_json(DeltaMessage(role="assistant", content=""), index=index)
            chunk = first
            while True:
                seen = len(choices.calls[chunk.index])
                choices.add(chunk)
                if chunk.text or chunk.logprobs:
                    logprobs = ChoiceLogprobs.of(chunk.logprobs or []) if request.logprobs else None
                    yield chunk_json(DeltaMessage(content=chunk.text), index=chunk.index, logprobs=logprobs)
                for number, call in enumerate(chunk.tool_calls or (), start=seen):
                    for piece in DeltaToolCall.pieces(number, call):
                        yield chunk_json(DeltaMessage(tool_calls=[piece]), index=chunk.index)
                if choices.done:
                    break
                try:
                    chunk = await generation.__anext__()
                except StopAsyncIteration:
                    break
            await self._finish(record, choices, started)
            finished = True
            # Every choice's finish chunk waits for the record: the episode is committed before them.
            for index in range(len(choices.texts)):
                yield chunk_json(DeltaMessage(), index=index, finish_reason=choices.finish_reason(index))
            if include_usage:
                yield chunk_json(DeltaMessage(), choices=False, usage=self._usage(record))
            yield sse("[DONE]")
        except (asyncio.CancelledError, GeneratorExit):
            if not finished:
                record.response = choices.text(0)
                await self._abort(record, started)
            raise
        except BaseException as exc:
            if not finished:
                record.response = choices.text(0)
                await self._fail(record, exc)
            error = self._client_error(exc)
            body = ErrorResponse(error={"message": error.client_message, "type": error.error_type, "code": error.code})
            yield sse(body.model_dump_json())
        finally:
            await generation.aclose()

    def _replay(self, record: EpisodeRecord, request: ChatCompletionRequest) -> ChatReply:
        """The recorded answer of an earlier request with the same Idempotency-Key, not a new one."""
        if request.stream:
            return ChatReply(stream=self._replay_stream(record, request))
        return ChatReply(completion=self._completion(record))

    async def _replay_stream(self, record: EpisodeRecord, request: ChatCompletionRequest) -> AsyncIterator[str]:
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        exclude = None if include_usage else {"usage"}
        common = dict(id=self._response_id(record), created=int(record.created_at.timestamp()), model=self.model_name)
        deltas = [(DeltaMessage(role="assistant", content=""), None)]
        if record.response:
            deltas.append((DeltaMessage(content=record.response), None))
        for number, call in enumerate(calls_of(record.tool_calls)):
            deltas += [(DeltaMessage(tool_calls=[piece]), None) for piece in DeltaToolCall.pieces(number, call)]
        deltas.append((DeltaMessage(), record.finish_reason))
        for delta, finish_reason in deltas:
            chunk = ChatCompletionChunk(**common, choices=[ChunkChoice(delta=delta, finish_reason=finish_reason)])
            yield sse(chunk.model_dump_json(exclude=exclude))
        if include_usage:
            yield sse(ChatCompletionChunk(**common, choices=[], usage=self._usage(record)).model_dump_json())
        yield sse("[DONE]")

    # -- recording ---------------------------------------------------------------------------------
    async def _finish(self, record: EpisodeRecord, choices: GeneratedChoices, started: float) -> None:
        """Record the episode: the first choice, with the usage of all (see the module docstring)."""
        usage = choices.usage or Usage()
        record.status = EpisodeStatus.COMPLETE
        record.response = choices.text(0)
        record.tool_calls = [template_call(c.id, c.name, c.arguments) for c in choices.calls[0]] or None
        record.finish_reason = choices.finish_reason(0)
        record.prompt_tokens = usage.prompt_tokens
        record.completion_tokens = usage.completion_tokens
        record.latency_ms = (time.perf_counter() - started) * 1000
        record.completed_at = utcnow()
        await self.recorder.record(record)
        if self.telemetry is not None:
            self.telemetry.request_latency.labels(stream=str(bool(record.params and record.params.get("stream"))).lower()).observe(
                record.latency_ms / 1000
            )
            self.telemetry.tokens.labels(kind="prompt").inc(record.prompt_tokens or 0)
            self.telemetry.tokens.labels(kind="completion").inc(record.completion_tokens or 0)

    async def _abort(self, record: EpisodeRecord, started: float) -> None:
        record.status = EpisodeStatus.ABORTED
        record.latency_ms = (time.perf_counter() - started) * 1000
        record.completed_at = utcnow()
        try:
            await self.recorder.record(record)
        except ReverieError:
            log.error("could not record aborted episode %s", record.id)

    async def _fail(self, record: EpisodeRecord, exc: BaseException) -> None:
        if isinstance(exc, ReverieError) and exc.status_code < 500:
            # Refused before generating (queue full, too long): the attempt is recorded as an error too.
            record.error = exc.message
        else:
            record.error = f"{type(exc).__name__}: {exc}"
        record.status = EpisodeStatus.ERROR
        record.completed_at = utcnow()
        try:
            await self.recorder.record(record)
        except ReverieError:
            log.error("could not record failed episode %s", record.id)

    @staticmethod
    def _client_error(exc: BaseException) -> ReverieError:
        if isinstance(exc, ReverieError):
            return exc
        log.error("generation failed", exc_info=exc)
        return EngineError("The engine failed while generating; the attempt was recorded.")

    @staticmethod
    def _usage(record: EpisodeRecord) -> UsageInfo:
        prompt, completion = record.prompt_tokens or 0, record.completion_tokens or 0
        return UsageInfo(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)

    @staticmethod
    def _response_id(record: EpisodeRecord) -> str:
        return f"chatcmpl-{record.id.hex}"
