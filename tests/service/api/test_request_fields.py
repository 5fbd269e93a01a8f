"""Nothing a client asks for is silently dropped (issue 24): every field of OpenAI's chat-completions
request is honoured, accepted because it cannot change the reply, or refused with a 400 naming it; a
field OpenAI does not define is accepted and logged (the house style, as vLLM does). Over a real uvicorn
server with the official `openai` client."""

from __future__ import annotations

import logging
import uuid

import httpx
import openai
import pytest
from openai.types.chat.completion_create_params import CompletionCreateParamsBase
from openai.types.chat.chat_completion_stream_options_param import ChatCompletionStreamOptionsParam
from sqlalchemy import func, select

from service.config import Settings
from service.serving.protocol import WITHOUT_EFFECT_ON_THE_REPLY, ChatCompletionRequest, StreamOptions
from service.store.models import Episode
from tests.servers import served_with_store

pytestmark = [pytest.mark.model]

MESSAGES = [{"role": "user", "content": "Hello."}]
ASK = dict(model="reverie", messages=MESSAGES, max_tokens=6, temperature=0)


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("fields")
    settings = Settings(
        data_dir=data, database_url=f"sqlite:///{data / 'store.db'}", model=str(tiny_model_dir), api_keys="k1:one",
        admin_key="adm-0123456789abcdef", scheduler=False, embedded_worker=False, default_max_tokens=4,
    )
    with served_with_store(settings) as (base_url, sessions):
        yield base_url, sessions


def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="k1", max_retries=0)


def episodes(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count(Episode.id)))


def post(base_url: str, body: dict) -> httpx.Response:
    return httpx.post(f"{base_url}/v1/chat/completions", json=body, headers={"Authorization": "Bearer k1"}, timeout=60)


def test_every_field_of_openais_request_is_declared():
    openai_fields = set(CompletionCreateParamsBase.__annotations__)
    declared = set(ChatCompletionRequest.model_fields)
    assert openai_fields - declared == set()
    assert set(ChatCompletionStreamOptionsParam.__annotations__) <= set(StreamOptions.model_fields)
    # what is accepted without effect is a declared field (or a declared field's field), not a free pass
    for name in WITHOUT_EFFECT_ON_THE_REPLY:
        top, _, sub = name.partition(".")
        assert top in declared and (not sub or sub in StreamOptions.model_fields), name


@pytest.mark.parametrize(
    "field, value",
    [
        # the tiny model's template (SmolLM2's) takes no tools; tool_choice without tools is OpenAI's 400 too
        ("tools", [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]),
        ("tool_choice", "auto"),
        ("tool_choice", {"type": "function", "function": {"name": "lookup"}}),
        ("tools", [{"type": "custom", "custom": {"name": "lookup"}}]),  # OpenAI's custom tools: not supported
        ("functions", [{"name": "lookup"}]),
        ("function_call", "auto"),
        ("response_format", {"type": "grammar", "grammar": "start: 'a'"}),  # vLLM's and others', not OpenAI's
        ("response_format", {"type": "json_schema", "json_schema": {"name": "no spaces", "schema": {}}}),
        ("response_format", {"type": "json_schema"}),
        ("audio", {"voice": "alloy", "format": "wav"}),
        ("modalities", ["text", "audio"]),
        ("web_search_options", {}),
        ("reasoning_effort", "high"),
        ("verbosity", "low"),
        ("service_tier", "flex"),
        ("store", True),
        ("top_logprobs", 2),  # without logprobs: true
        ("presence_penalty", 2.5),
        ("logit_bias", {"49152": 10}),  # the tiny model's vocabulary ends at 49151
        ("logit_bias", {"50": 100.5}),
        ("n", 5),  # over REVERIE_MAX_CHOICES
    ],
)
def test_a_field_not_honoured_is_400_naming_it_and_records_nothing(server, field, value):
    base_url, sessions = server
    before = episodes(sessions)
    with pytest.raises(openai.BadRequestError) as caught:
        client(base_url).chat.completions.create(**ASK, extra_body={field: value})
    assert caught.value.status_code == 400
    assert caught.value.param.split(".")[0] == field and caught.value.type == "invalid_request_error"
    assert episodes(sessions) == before


@pytest.mark.parametrize(
    "field, value",
    [("tools", []), ("tool_choice", "none"), ("response_format", {"type": "text"}), ("store", False),
     ("logprobs", False), ("presence_penalty", 0), ("modalities", ["text"]), ("service_tier", "auto"),
     ("reasoning_effort", "none"), ("logit_bias", {}), ("top_logprobs", 0)],
)
def test_a_value_that_asks_for_nothing_is_served(server, field, value):
    base_url, _ = server
    plain = client(base_url).chat.completions.create(**ASK).choices[0].message.content
    reply = client(base_url).chat.completions.create(**ASK, extra_body={field: value})
    assert reply.choices[0].message.content == plain


@pytest.mark.parametrize("field", ["top_k", "guided_json", "repetition_penalty", "chat_template_kwargs"])
def test_a_field_openai_does_not_define_is_accepted_and_logged(server, field, caplog):
    base_url, sessions = server
    caplog.set_level(logging.INFO, logger="service.serving.protocol")
    before = episodes(sessions)
    plain = post(base_url, ASK).json()["choices"][0]["message"]["content"]
    r = post(base_url, {**ASK, field: 1})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == plain  # ignored: the reply is the one without it
    assert episodes(sessions) == before + 2
    logged = [record.getMessage() for record in caplog.records if "OpenAI does not define" in record.getMessage()]
    assert logged == [f"ignoring request fields OpenAI does not define: {field!r}"]


def test_unknown_fields_on_messages_and_parts_are_accepted_and_logged_in_one_line(server, caplog):
    base_url, _ = server
    caplog.set_level(logging.INFO, logger="service.serving.protocol")
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": "Hello.", "cache_control": {"type": "ephemeral"}},
    ]
    r = post(base_url, {**ASK, "messages": messages, "top_k": 3, "stream_options": None})
    assert r.status_code == 200, r.text
    logged = [record.getMessage() for record in caplog.records if "OpenAI does not define" in record.getMessage()]
    assert logged == [
        "ignoring request fields OpenAI does not define: "
        "'top_k', 'messages.0.content.0.cache_control', 'messages.1.cache_control'"
    ]


@pytest.mark.parametrize(
    "message, param",
    [
        ({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}, "messages.0.content"),
        ({"role": "assistant", "content": "No.", "refusal": "I cannot help with that."}, "messages.0.refusal"),
        ({"role": "user", "content": "Hi.", "audio": {"id": "a1"}}, "messages.0.audio"),
    ],
)
def test_message_fields_not_honoured_are_400_naming_them(server, message, param):
    base_url, _ = server
    r = post(base_url, {**ASK, "messages": [message, *MESSAGES]})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param
    if param.endswith("content"):
        assert "'image_url' are not supported" in r.json()["error"]["message"]


def test_fields_without_effect_are_served_unchanged_and_recorded(server):
    base_url, sessions = server
    plain = client(base_url).chat.completions.create(**ASK).choices[0].message.content
    reply = client(base_url).chat.completions.create(
        **ASK, user="u-17", metadata={"ticket": "T-9"}, safety_identifier="s-1", prompt_cache_key="k",
        service_tier="default", store=False, parallel_tool_calls=False,
        prediction={"type": "content", "content": "Hello"}, stream=False,
    )
    assert reply.choices[0].message.content == plain
    with sessions() as session:
        params = session.get(Episode, uuid.UUID(reply.id.removeprefix("chatcmpl-"))).params
    assert params["user"] == "u-17" and params["metadata"] == {"ticket": "T-9"}


def test_a_reply_sent_back_as_history_is_accepted_with_names(server):
    base_url, sessions = server
    first = client(base_url).chat.completions.create(**ASK)
    history = [{"role": "user", "content": "Hello.", "name": "ada"}, first.choices[0].message,
               {"role": "user", "content": "And then?"}]
    second = client(base_url).chat.completions.create(model="reverie", messages=history, max_tokens=2)
    with sessions() as session:
        stored = session.get(Episode, uuid.UUID(second.id.removeprefix("chatcmpl-"))).messages
    assert stored[0] == {"role": "user", "content": "Hello.", "name": "ada"}
    assert stored[1] == {"role": "assistant", "content": first.choices[0].message.content}
