"""`/v1/chat/completions`, `/v1/responses` and `/v1/models[/{id}]`: validate, call the chat (or responses)
service, shape the response."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import StreamingResponse

from service.errors import ModelNotFoundError
from service.serving.auth import caller_id
from service.api.deps import ChatDep, NamespaceDep, ResponsesDep, SettingsDep, StartedAtDep
from service.serving.protocol import ChatCompletion, ChatCompletionRequest, ErrorResponse, ModelCard, ModelList
from service.serving.protocol_responses import ResponseObject, ResponsesRequest

router = APIRouter(prefix="/v1", tags=["openai"])

_ERRORS = {status: {"model": ErrorResponse} for status in (400, 401, 404, 409, 413, 422, 429, 500, 503)}
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.post("/chat/completions", response_model=ChatCompletion, responses=_ERRORS)
async def create_chat_completion(
    body: ChatCompletionRequest,
    chat: ChatDep,
    namespace: NamespaceDep,
    authorization: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[str | None, Header(max_length=256)] = None,
    x_conversation_id: Annotated[str | None, Header(max_length=256)] = None,
):
    reply = await chat.complete(
        body,
        namespace=namespace,
        caller=caller_id(authorization),
        idempotency_key=idempotency_key,
        conversation_id=x_conversation_id,
    )
    if reply.stream is not None:
        return StreamingResponse(reply.stream, media_type="text/event-stream", headers=_SSE_HEADERS)
    return reply.completion


@router.post("/responses", response_model=ResponseObject, responses=_ERRORS)
async def create_response(
    body: ResponsesRequest,
    responses: ResponsesDep,
    namespace: NamespaceDep,
    authorization: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[str | None, Header(max_length=256)] = None,
    x_conversation_id: Annotated[str | None, Header(max_length=256)] = None,
):
    reply = await responses.create(
        body,
        namespace=namespace,
        caller=caller_id(authorization),
        idempotency_key=idempotency_key,
        conversation_id=x_conversation_id,
    )
    if reply.stream is not None:
        return StreamingResponse(reply.stream, media_type="text/event-stream", headers=_SSE_HEADERS)
    return reply.response


@router.get("/models", response_model=ModelList, responses=_ERRORS)
async def list_models(settings: SettingsDep, started_at: StartedAtDep, _namespace: NamespaceDep) -> ModelList:
    return ModelList(data=[ModelCard(id=settings.model_name, created=started_at)])


# `:path`: a model id may hold slashes (REVERIE_MODEL_NAME=HuggingFaceTB/SmolLM2-135M-Instruct).
@router.get("/models/{model_id:path}", response_model=ModelCard, responses=_ERRORS)
async def retrieve_model(
    model_id: str, settings: SettingsDep, started_at: StartedAtDep, _namespace: NamespaceDep
) -> ModelCard:
    if model_id != settings.model_name:
        raise ModelNotFoundError(
            f"The model `{model_id}` does not exist; this server serves `{settings.model_name}`.", param="model"
        )
    return ModelCard(id=settings.model_name, created=started_at)
