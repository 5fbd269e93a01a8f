"""`POST /v1/responses` served on the chat path: the request becomes a chat request (protocol_responses),
the chat service validates, records and generates it exactly as a chat (the episode, the durable-record
rule, Idempotency-Key, limits), and its reply or stream is turned back into a response or its events.

The stream's events are OpenAI's: response.created, response.in_progress, then per output item
response.output_item.added, for a message response.content_part.added, response.output_text.delta ...,
response.output_text.done, response.content_part.done, for a function call
response.function_call_arguments.delta ... and .done, then response.output_item.done; last
response.completed (response.incomplete when max_output_tokens cut the reply). The chat stream's finish
comes only after its episode is committed, so response.completed does too.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from service.errors import ReverieError
from service.serving.chat import ChatService
from service.serving.protocol_responses import (
    OutputFunctionCall,
    OutputMessage,
    OutputText,
    ResponseObject,
    ResponsesRequest,
    ResponseUsage,
    finished,
    responses_param,
)


@dataclass
class ResponsesReply:
    """What the router sends: a finished response, or a stream of SSE events."""

    response: ResponseObject | None = None
    stream: AsyncIterator[str] | None = None


class ResponsesService:
    def __init__(self, chat: ChatService):
        self.chat = chat

    async def create(self, request: ResponsesRequest, **context: Any) -> ResponsesReply:
        """Serve one response; `context` is the chat service's (namespace, caller, idempotency_key,
        conversation_id). A chat error naming a chat field names this request's field instead."""
        chat_request = request.to_chat_request()
        try:
            reply = await self.chat.complete(chat_request, **context)
        except ReverieError as exc:
            exc.param = responses_param(exc.param)
            raise
        if reply.stream is not None:
            return ResponsesReply(stream=ResponseEvents(request).of(reply.stream))
        return ResponsesReply(response=ResponseObject.of_completion(request, reply.completion))


class ResponseEvents:
    """The events of one streamed response, from the SSE lines of its chat stream (one choice)."""

    def __init__(self, request: ResponsesRequest):
        self.request = request
        self.sequence = itertools.count()
        self.response: ResponseObject | None = None
        self.output: list[OutputMessage | OutputFunctionCall] = []
        self.open: OutputMessage | OutputFunctionCall | None = None
        self.finish_reason: str | None = None

    async def of(self, lines: AsyncIterator[str]) -> AsyncIterator[str]:
        usage = None
        try:
            async for line in lines:
                payload = line.removeprefix("data: ").strip()
                if payload == "[DONE]":
                    break
                data = json.loads(payload)
                if self.response is None:
                    for event in self._start(data):
                        yield event
                if "error" in data:  # the chat stream's error body: the episode was recorded as failed
                    for event in self._failed(data["error"]):
                        yield event
                    return
                for choice in data.get("choices") or []:
                    for event in self._delta(choice["delta"]):
                        yield event
                    self.finish_reason = choice.get("finish_reason") or self.finish_reason
                usage = data.get("usage") or usage
            for event in self._close():
                yield event
            if not self.output:  # no text and no call: one empty message, as OpenAI sends it
                for event in [*self._text(""), *self._close()]:
                    yield event
            final = self.response.model_copy(update={"output": self.output, **finished(self.finish_reason)})
            if usage is not None:
                final.usage = ResponseUsage(input_tokens=usage["prompt_tokens"], output_tokens=usage["completion_tokens"],
                                            total_tokens=usage["total_tokens"])
            yield self._event(f"response.{final.status}", response=final.model_dump(mode="json"))
        finally:
            await lines.aclose()  # a client that left: the chat stream records the episode as aborted

    def _event(self, kind: str, **fields: Any) -> str:
        body = {"type": kind, "sequence_number": next(self.sequence), **fields}
        return f"event: {kind}\ndata: {json.dumps(body, ensure_ascii=False)}\n\n"

    def _start(self, data: dict[str, Any]) -> Iterator[str]:
        key = str(data.get("id", "")).removeprefix("chatcmpl-")
        self.response = ResponseObject(
            id=f"resp_{key}", created_at=data.get("created", 0), model=data.get("model", self.request.model),
            status="in_progress", output=[], **self.request.echo(),
        )
        snapshot = self.response.model_dump(mode="json")
        yield self._event("response.created", response=snapshot)
        yield self._event("response.in_progress", response=snapshot)

    def _delta(self, delta: dict[str, Any]) -> Iterator[str]:
        if delta.get("content"):
            yield from self._text(delta["content"])
        for piece in delta.get("tool_calls") or []:
            if piece.get("id"):  # a call's first piece: its id and name
                yield from self._close()
                call_id = piece["id"]
                self.open = OutputFunctionCall(id=f"fc_{call_id.removeprefix('call_')}", status="in_progress",
                                               call_id=call_id, name=piece["function"]["name"], arguments="")
                yield self._event("response.output_item.added", output_index=len(self.output),
                                  item=self.open.model_dump(mode="json"))
            elif isinstance(self.open, OutputFunctionCall):
                pieces = piece["function"].get("arguments") or ""
                self.open.arguments += pieces
                yield self._event("response.function_call_arguments.delta", item_id=self.open.id,
                                  output_index=len(self.output), delta=pieces)

    def _text(self, text: str) -> Iterator[str]:
        if not isinstance(self.open, OutputMessage):
            yield from self._close()
            number = sum(isinstance(item, OutputMessage) for item in self.output)
            suffix = f"_{number}" if number else ""
            self.open = OutputMessage(id=f"msg_{self.response.id.removeprefix('resp_')}{suffix}", status="in_progress",
                                      content=[])
            where = {"output_index": len(self.output)}
            yield self._event("response.output_item.added", **where, item=self.open.model_dump(mode="json"))
            self.open.content.append(OutputText(text=""))
            yield self._event("response.content_part.added", item_id=self.open.id, **where, content_index=0,
                              part=self.open.content[0].model_dump(mode="json"))
        if text:
            self.open.content[0].text += text
            yield self._event("response.output_text.delta", item_id=self.open.id, output_index=len(self.output),
                              content_index=0, delta=text, logprobs=[])

    def _close(self) -> Iterator[str]:
        """Finish the open item, if any: its done events, and it joins the output."""
        item, self.open = self.open, None
        if item is None:
            return
        where = {"item_id": item.id, "output_index": len(self.output)}
        if isinstance(item, OutputMessage):
            part = item.content[0]
            yield self._event("response.output_text.done", **where, content_index=0, text=part.text, logprobs=[])
            yield self._event("response.content_part.done", **where, content_index=0, part=part.model_dump(mode="json"))
        else:
            yield self._event("response.function_call_arguments.done", **where, name=item.name, arguments=item.arguments)
        item.status = "incomplete" if self.finish_reason == "length" else "completed"  # cut by max_output_tokens
        self.output.append(item)
        yield self._event("response.output_item.done", output_index=where["output_index"], item=item.model_dump(mode="json"))

    def _failed(self, error: dict[str, Any]) -> Iterator[str]:
        yield self._event("error", code=error.get("code") or error.get("type"), message=error.get("message"), param=None)
        failed = self.response.model_copy(update={
            "status": "failed", "output": self.output,
            "error": {"code": error.get("code") or "server_error", "message": error.get("message")},
        })
        yield self._event("response.failed", response=failed.model_dump(mode="json"))
