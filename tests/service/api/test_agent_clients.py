"""Agent frameworks as clients (issue 24): LangChain's `ChatOpenAI`, the OpenAI Agents SDK and LiteLLM, over a
real uvicorn server on loopback.

The tiny random model on the shipped SmolLM2 template with tools (service/chat_templates/), as in
test_responses: a random model writes nonsense, so what is checked is what each framework makes of our
replies: text and streams reassembled as the server sent them, tool calls and structured outputs parsed
and validated by the framework itself (forced by grammar, so well formed whatever the model), and every
request recorded as an episode. Strings are bounded, tool schemas strict (a schema that allows more
properties lets a random model write keys until max_tokens cuts the call) and calls forced one at a time
(parallel_tool_calls false), as a random model under the call grammar otherwise writes calls until cut.
"""

from __future__ import annotations

import socket
import uuid
from typing import Annotated, Literal

import litellm
import pytest
from agents import (Agent, ModelSettings, OpenAIChatCompletionsModel, Runner, function_tool, set_default_openai_client,
                    set_tracing_disabled)
from agents.models import _openai_shared
from langchain_openai import ChatOpenAI
from openai import AsyncOpenAI
from pydantic import BaseModel, Field
from sqlalchemy import select

from service.config import BUNDLED_CHAT_TEMPLATE, Settings
from service.store.models import Episode
from tests.servers import served_with_store

# LiteLLM's own TypedDicts make pydantic warn once per class as they are first used; nothing of ours.
pytestmark = [pytest.mark.model, pytest.mark.filterwarnings("ignore:Items? .* the `ReadOnly` qualifier:UserWarning")]

KEY = "k1"
QUESTION = "What is the weather in Lyon?"


class Weather(BaseModel):
    """The forecast for a city."""

    city: Annotated[str, Field(max_length=10)]
    unit: Literal["celsius", "fahrenheit"]


class SaveNote(BaseModel):
    """Keep a note."""

    text: Annotated[str, Field(max_length=12)]


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("agent-clients")
    settings = Settings(
        data_dir=data, database_url=f"sqlite:///{data / 'store.db'}", model=str(tiny_model_dir),
        api_keys=f"{KEY}:one", admin_key="adm-0123456789abcdef", scheduler=False, embedded_worker=False,
        torch_threads=1, chat_template=str(BUNDLED_CHAT_TEMPLATE),
    )
    with served_with_store(settings) as (base_url, sessions):
        yield f"{base_url}/v1", sessions


def episode(sessions, reply_id: str) -> Episode:
    """The episode a chat completion (chatcmpl-...) or a response (resp_...) was recorded as."""
    key = reply_id.removeprefix("chatcmpl-").removeprefix("resp_")
    with sessions() as session:
        return session.get(Episode, uuid.UUID(key))


def latest_episode(sessions) -> Episode:
    """The episode recorded last (for a client that keeps no reply id)."""
    with sessions() as session:
        return session.scalars(select(Episode).order_by(Episode.created_at.desc()).limit(1)).one()


# LangChain ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chat(server):
    return ChatOpenAI(base_url=server[0], api_key=KEY, model="reverie", max_retries=0, max_tokens=80, timeout=120,
                      stream_usage=True)


def test_langchain_invoke_and_stream_give_the_recorded_text(server, chat):
    _, sessions = server
    greedy = chat.bind(temperature=0, max_tokens=12)
    reply = greedy.invoke("Hello there")
    assert isinstance(reply.content, str) and reply.response_metadata["id"].startswith("chatcmpl-")
    recorded = episode(sessions, reply.response_metadata["id"])
    assert recorded.messages == [{"role": "user", "content": "Hello there"}] and recorded.response == reply.content
    assert reply.usage_metadata["output_tokens"] == recorded.completion_tokens
    assert reply.usage_metadata["input_tokens"] == recorded.prompt_tokens > 0

    chunks = list(greedy.stream("Hello there"))
    assert len(chunks) > 2
    streamed = sum(chunks[1:], chunks[0])
    assert streamed.content == reply.content  # greedy: the stream is the unstreamed reply
    assert streamed.usage_metadata["output_tokens"] == reply.usage_metadata["output_tokens"]
    assert latest_episode(sessions).response == reply.content  # LangChain keeps no id from a stream


@pytest.mark.parametrize("tool_choice", ["Weather", "any"])
def test_langchain_bind_tools_returns_calls_whose_args_validate(server, chat, tool_choice):
    _, sessions = server
    bound = chat.bind_tools([Weather, SaveNote], tool_choice=tool_choice, parallel_tool_calls=False,
                           strict=True)
    reply = bound.invoke(QUESTION)
    (call,) = reply.tool_calls
    assert not reply.invalid_tool_calls and reply.response_metadata["finish_reason"] == "tool_calls"
    schema = {"Weather": Weather, "SaveNote": SaveNote}[call["name"]]
    assert tool_choice == "any" or call["name"] == "Weather"
    schema.model_validate(call["args"])
    recorded = episode(sessions, reply.response_metadata["id"])
    assert recorded.tool_calls[0]["id"] == call["id"] and recorded.tool_calls[0]["function"]["arguments"] == call["args"]


def test_langchain_streamed_tool_call_reassembles(chat):
    bound = chat.bind_tools([Weather], tool_choice="Weather", parallel_tool_calls=False, strict=True)
    chunks = list(bound.stream(QUESTION))
    assert sum(len(chunk.tool_call_chunks) for chunk in chunks) > 1  # the arguments came in pieces
    streamed = sum(chunks[1:], chunks[0])
    (call,) = streamed.tool_calls
    assert call["name"] == "Weather" and call["id"].startswith("call_") and not streamed.invalid_tool_calls
    Weather.model_validate(call["args"])


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_langchain_structured_output_returns_a_validated_object(server, chat, method):
    _, sessions = server
    structured = chat.with_structured_output(Weather, method=method, include_raw=True, strict=True)
    for temperature in (0, 1):
        out = structured.invoke(f"Invent a forecast ({temperature}).", temperature=temperature)
        assert out["parsing_error"] is None and isinstance(out["parsed"], Weather), out
    recorded = episode(sessions, out["raw"].response_metadata["id"])
    if method == "json_schema":
        assert recorded.params["response_format"]["json_schema"]["name"] == "Weather"
        assert Weather.model_validate_json(recorded.response) == out["parsed"]
    else:
        assert recorded.tool_calls[0]["function"]["name"] == "Weather"
        assert Weather.model_validate(recorded.tool_calls[0]["function"]["arguments"]) == out["parsed"]


def test_langchain_through_the_responses_api(server):
    _, sessions = server

    def responses_chat(max_tokens: int):  # LangChain's Responses path ignores max_tokens given to invoke
        return ChatOpenAI(base_url=server[0], api_key=KEY, model="reverie", max_retries=0, max_tokens=max_tokens,
                          timeout=120, use_responses_api=True, temperature=0)

    reply = responses_chat(12).invoke("Hello there")
    assert reply.response_metadata["id"].startswith("resp_") and reply.text
    recorded = episode(sessions, reply.response_metadata["id"])
    assert recorded.messages == [{"role": "user", "content": "Hello there"}] and recorded.response == reply.text
    assert reply.usage_metadata["output_tokens"] == recorded.completion_tokens <= 12

    bound = responses_chat(80).bind_tools([Weather], tool_choice="Weather", parallel_tool_calls=False, strict=True)
    called = bound.invoke(QUESTION)
    (call,) = called.tool_calls
    assert call["name"] == "Weather" and not called.invalid_tool_calls
    Weather.model_validate(call["args"])
    assert episode(sessions, called.response_metadata["id"]).tool_calls[0]["function"]["arguments"] == call["args"]


# OpenAI Agents SDK --------------------------------------------------------------------------------


def forecast_agent(model=None):
    """An agent whose one tool records its calls; forced to call it, and stopped by its first result."""
    calls = []

    @function_tool
    def get_weather(city: Literal["Lyon", "Paris", "Oslo"], unit: Literal["celsius", "fahrenheit"]) -> str:
        """The forecast for a city."""
        calls.append((city, unit))
        return f"Sunny in {city}, 24 degrees {unit}."

    agent = Agent(
        name="forecaster", instructions="Answer with the tool.", tools=[get_weather],
        model_settings=ModelSettings(tool_choice="get_weather", parallel_tool_calls=False, max_tokens=60),
        tool_use_behavior="stop_on_first_tool", model=model or "reverie",
    )
    return agent, calls


@pytest.fixture
def agents_client(server):
    """The SDK's default client pointed at the server (its default API: Responses), tracing off."""
    previous = _openai_shared.get_default_openai_client()
    client = AsyncOpenAI(base_url=server[0], api_key=KEY, max_retries=0)
    set_tracing_disabled(True)
    set_default_openai_client(client, use_for_tracing=False)
    yield client
    _openai_shared.set_default_openai_client(previous)


async def test_an_agent_calls_its_tool_through_the_responses_api(server, agents_client):
    _, sessions = server
    agent, calls = forecast_agent()
    question = f"{QUESTION} ({uuid.uuid4().hex[:6]})"
    result = await Runner.run(agent, question, max_turns=2)
    ((city, unit),) = calls
    assert result.final_output == f"Sunny in {city}, 24 degrees {unit}."
    (response,) = result.raw_responses
    assert response.response_id.startswith("resp_")
    recorded = episode(sessions, response.response_id)
    assert recorded.messages == [{"role": "system", "content": "Answer with the tool."},
                                 {"role": "user", "content": question}]
    assert recorded.tool_calls[0]["function"] == {"name": "get_weather", "arguments": {"city": city, "unit": unit}}
    assert recorded.params["tools"][0]["function"]["name"] == "get_weather"


async def test_an_agent_calls_its_tool_through_chat_completions(server, agents_client):
    _, sessions = server
    agent, calls = forecast_agent(OpenAIChatCompletionsModel(model="reverie", openai_client=agents_client))
    question = f"{QUESTION} ({uuid.uuid4().hex[:6]})"
    result = await Runner.run(agent, question, max_turns=2)
    ((city, unit),) = calls
    assert result.final_output == f"Sunny in {city}, 24 degrees {unit}."
    assert result.raw_responses[0].response_id is None  # the SDK keeps no chat completion id
    recorded = latest_episode(sessions)
    assert recorded.messages == [{"role": "system", "content": "Answer with the tool."},
                                 {"role": "user", "content": question}]
    assert recorded.tool_calls[0]["function"] == {"name": "get_weather", "arguments": {"city": city, "unit": unit}}
    assert recorded.finish_reason == "tool_calls"


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
async def test_a_streamed_agent_run_calls_its_tool(server, agents_client, api):
    _, sessions = server
    agent, calls = forecast_agent(
        OpenAIChatCompletionsModel(model="reverie", openai_client=agents_client) if api == "chat_completions" else None
    )
    result = Runner.run_streamed(agent, f"{QUESTION} (streamed)", max_turns=2)
    kinds = [event.item.type async for event in result.stream_events() if event.type == "run_item_stream_event"]
    ((city, unit),) = calls
    assert kinds == ["tool_call_item", "tool_call_output_item"]
    assert result.final_output == f"Sunny in {city}, 24 degrees {unit}."
    (response,) = result.raw_responses
    recorded = episode(sessions, response.response_id) if api == "responses" else latest_episode(sessions)
    assert recorded.tool_calls[0]["function"] == {"name": "get_weather", "arguments": {"city": city, "unit": unit}}


# LiteLLM ------------------------------------------------------------------------------------------
# Through its OpenAI-compatible provider ("openai/<served name>" with api_base), as LiteLLM's docs say
# to reach a self-hosted OpenAI-compatible server. tests/conftest.py keeps it offline (its cost map is
# the copy it ships); `loopback_only` checks that it opens no other connection while it runs.

WEATHER_TOOL = {"type": "function", "function": {
    "name": "Weather", "description": "The forecast for a city.", "strict": True,
    "parameters": {**Weather.model_json_schema(), "additionalProperties": False},
}}
SAVE_NOTE_TOOL = {"type": "function", "function": {
    "name": "SaveNote", "description": "Keep a note.", "strict": True,
    "parameters": {**SaveNote.model_json_schema(), "additionalProperties": False},
}}
LOOPBACK = {"127.0.0.1", "::1", "localhost", b"127.0.0.1", b"localhost"}


@pytest.fixture
def loopback_only(monkeypatch):
    """Refuse, and list, every connection or name lookup to anything but loopback while a test runs."""
    attempts = []
    connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def loopback_connect(sock, address):
        if isinstance(address, tuple) and address[0] not in LOOPBACK:
            attempts.append(address)
            raise OSError(f"test refused a connection to {address}")
        return connect(sock, address)

    def loopback_getaddrinfo(host, *args, **kwargs):
        if host not in LOOPBACK:
            attempts.append(host)
            raise socket.gaierror(f"test refused a lookup of {host}")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", loopback_connect)
    monkeypatch.setattr(socket, "getaddrinfo", loopback_getaddrinfo)
    yield
    assert attempts == []


@pytest.fixture
def litellm_args(server, loopback_only):
    return {"model": "openai/reverie", "api_base": server[0], "api_key": KEY, "max_retries": 0, "timeout": 120}


def test_litellm_completion_and_stream_give_the_recorded_text(server, litellm_args):
    _, sessions = server
    messages = [{"role": "user", "content": "Hello there"}]
    reply = litellm.completion(**litellm_args, messages=messages, temperature=0, max_tokens=12)
    text = reply.choices[0].message.content
    assert isinstance(text, str) and reply.id.startswith("chatcmpl-")
    recorded = episode(sessions, reply.id)
    assert recorded.messages == messages and recorded.response == text
    assert reply.usage.completion_tokens == recorded.completion_tokens
    assert reply.usage.prompt_tokens == recorded.prompt_tokens > 0

    chunks = list(litellm.completion(**litellm_args, messages=messages, temperature=0, max_tokens=12, stream=True,
                                     stream_options={"include_usage": True}))
    assert len(chunks) > 2
    streamed = litellm.stream_chunk_builder(chunks, messages=messages)
    assert streamed.choices[0].message.content == text  # greedy: the stream is the unstreamed reply
    assert streamed.usage.completion_tokens == reply.usage.completion_tokens
    assert episode(sessions, chunks[0].id).response == text


@pytest.mark.parametrize("tool_choice", [{"type": "function", "function": {"name": "Weather"}}, "required"])
def test_litellm_tool_call_comes_back_parsed(server, litellm_args, tool_choice):
    _, sessions = server
    reply = litellm.completion(**litellm_args, messages=[{"role": "user", "content": QUESTION}], max_tokens=80,
                               tools=[WEATHER_TOOL, SAVE_NOTE_TOOL], tool_choice=tool_choice,
                               parallel_tool_calls=False)
    (choice,) = reply.choices
    (call,) = choice.message.tool_calls
    assert choice.finish_reason == "tool_calls" and call.id.startswith("call_") and call.type == "function"
    assert tool_choice == "required" or call.function.name == "Weather"
    schema = {"Weather": Weather, "SaveNote": SaveNote}[call.function.name]
    arguments = schema.model_validate_json(call.function.arguments)
    recorded = episode(sessions, reply.id)
    assert recorded.tool_calls[0]["id"] == call.id
    assert schema.model_validate(recorded.tool_calls[0]["function"]["arguments"]) == arguments


def test_litellm_streamed_tool_call_reassembles(litellm_args):
    messages = [{"role": "user", "content": QUESTION}]
    chunks = list(litellm.completion(**litellm_args, messages=messages, max_tokens=80, tools=[WEATHER_TOOL],
                                     tool_choice={"type": "function", "function": {"name": "Weather"}},
                                     parallel_tool_calls=False, stream=True))
    pieces = [chunk for chunk in chunks if chunk.choices and chunk.choices[0].delta.tool_calls]
    assert len(pieces) > 1  # the arguments came in pieces
    streamed = litellm.stream_chunk_builder(chunks, messages=messages)
    (call,) = streamed.choices[0].message.tool_calls
    assert streamed.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "Weather" and call.id.startswith("call_")
    Weather.model_validate_json(call.function.arguments)


@pytest.mark.parametrize("as_given", ["dict", "pydantic"])
def test_litellm_json_schema_reply_validates(server, litellm_args, as_given):
    _, sessions = server
    response_format = Weather if as_given == "pydantic" else {"type": "json_schema", "json_schema": {
        "name": "Weather", "strict": True,
        "schema": {**Weather.model_json_schema(), "additionalProperties": False},
    }}
    for temperature in (0, 1):
        reply = litellm.completion(**litellm_args, messages=[{"role": "user", "content": "Invent a forecast."}],
                                   max_tokens=80, temperature=temperature, response_format=response_format)
        assert reply.choices[0].finish_reason == "stop"
        forecast = Weather.model_validate_json(reply.choices[0].message.content)
    recorded = episode(sessions, reply.id)
    assert recorded.params["response_format"]["type"] == "json_schema"
    assert Weather.model_validate_json(recorded.response) == forecast


async def test_litellm_acompletion_text_tool_call_and_stream(server, litellm_args):
    _, sessions = server
    messages = [{"role": "user", "content": "Hello there"}]
    reply = await litellm.acompletion(**litellm_args, messages=messages, temperature=0, max_tokens=12)
    text = reply.choices[0].message.content
    assert episode(sessions, reply.id).response == text

    stream = await litellm.acompletion(**litellm_args, messages=messages, temperature=0, max_tokens=12, stream=True)
    chunks = [chunk async for chunk in stream]
    assert litellm.stream_chunk_builder(chunks, messages=messages).choices[0].message.content == text

    called = await litellm.acompletion(**litellm_args, messages=[{"role": "user", "content": QUESTION}],
                                       max_tokens=80, tools=[WEATHER_TOOL], tool_choice="required",
                                       parallel_tool_calls=False)
    (call,) = called.choices[0].message.tool_calls
    assert called.choices[0].finish_reason == "tool_calls" and call.function.name == "Weather"
    Weather.model_validate_json(call.function.arguments)
    assert episode(sessions, called.id).tool_calls[0]["id"] == call.id
