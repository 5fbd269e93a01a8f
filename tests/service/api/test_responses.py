"""`POST /v1/responses` (issue 24) over a real uvicorn server with the official `openai` client.

The tiny random model on the shipped SmolLM2 template with tools (service/chat_templates/): a random
model writes nonsense, so what is checked is the shape of every response and event, that grammars hold
(a forced call, a json_schema format), and that each response is recorded as an episode, as a chat is.
Greedy (temperature 0) where a streamed response is compared with an unstreamed one.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Annotated, Literal

import httpx
import openai
import pytest
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from service.config import BUNDLED_CHAT_TEMPLATE, Settings
from service.store.models import Episode
from tests.servers import served_with_store

pytestmark = [pytest.mark.model]


class Weather(BaseModel):
    city: Annotated[str, Field(max_length=10)]
    unit: Literal["celsius", "fahrenheit"]


WEATHER_TOOL = {"type": "function", "name": "get_weather", "description": "The forecast for a city.",
                "parameters": {**Weather.model_json_schema(), "additionalProperties": False}, "strict": True}
QUESTION = "What is the weather in Lyon?"


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("responses")
    settings = Settings(
        data_dir=data, database_url=f"sqlite:///{data / 'store.db'}", model=str(tiny_model_dir), api_keys="k1:one",
        admin_key="adm-0123456789abcdef", scheduler=False, embedded_worker=False, torch_threads=1,
        chat_template=str(BUNDLED_CHAT_TEMPLATE),
    )
    with served_with_store(settings) as (base_url, sessions):
        yield base_url, sessions


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server[0]}/v1", api_key="k1", max_retries=0)


def episode(sessions, response_id: str) -> Episode:
    with sessions() as session:
        return session.get(Episode, uuid.UUID(response_id.removeprefix("resp_")))


def test_a_text_response_is_recorded_as_an_episode(server, client):
    _, sessions = server
    response = client.responses.create(model="reverie", input="Hello there", max_output_tokens=6, temperature=0)
    assert response.object == "response" and response.id.startswith("resp_") and response.model == "reverie"
    (message,) = response.output
    assert message.type == "message" and message.role == "assistant" and message.content[0].type == "output_text"
    assert response.status in ("completed", "incomplete")
    if response.status == "incomplete":  # the random model ran into max_output_tokens
        assert response.incomplete_details.reason == "max_output_tokens" and response.usage.output_tokens == 6
    recorded = episode(sessions, response.id)
    assert recorded.messages == [{"role": "user", "content": "Hello there"}]
    assert recorded.response == response.output_text and recorded.completion_tokens == response.usage.output_tokens
    assert recorded.prompt_tokens == response.usage.input_tokens > 0 and response.store is False


def test_instructions_are_the_system_message(server, client):
    _, sessions = server
    response = client.responses.create(
        model="reverie", instructions="Answer in French.", input=[{"role": "user", "content": [
            {"type": "input_text", "text": "Hello"}]}], max_output_tokens=4,
    )
    assert response.instructions == "Answer in French."
    assert episode(sessions, response.id).messages == [
        {"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Hello"}]


def test_a_streamed_response_sends_openais_events_and_the_unstreamed_text(server, client):
    _, sessions = server
    ask = dict(model="reverie", input=QUESTION, max_output_tokens=12, temperature=0)
    events = list(client.responses.create(**ask, stream=True))
    kinds = [event.type for event in events]
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", *["response.output_text.delta"] * len(deltas),
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     f"response.{events[-1].response.status}"]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    final = events[-1].response
    assert events[0].response.status == "in_progress" and final.id == events[0].response.id
    assert "".join(deltas) == events[-4].text == final.output_text
    assert final.usage.output_tokens == 12 or final.status == "completed"
    assert final.output_text == client.responses.create(**ask).output_text
    assert episode(sessions, final.id).response == final.output_text


def test_a_json_schema_format_is_enforced_and_parsed(server, client):
    _, sessions = server
    for temperature in (0, 1):
        parsed = client.responses.parse(
            model="reverie", input="Invent a forecast.", text_format=Weather, max_output_tokens=60,
            temperature=temperature,
        )
        assert isinstance(parsed.output_parsed, Weather), parsed.output_text
    assert parsed.text.format.type == "json_schema"
    recorded = episode(sessions, parsed.id)
    assert recorded.params["response_format"]["json_schema"]["name"] == "Weather"
    any_object = client.responses.create(
        model="reverie", input="A JSON object, please.", text={"format": {"type": "json_object"}}, max_output_tokens=40
    )
    if any_object.status == "completed":
        assert isinstance(json.loads(any_object.output_text), dict)


def test_a_forced_function_call_and_its_output_round_trip(server, client):
    _, sessions = server
    first = client.responses.create(
        model="reverie", input=QUESTION, tools=[WEATHER_TOOL], max_output_tokens=60,
        tool_choice={"type": "function", "name": "get_weather"}, parallel_tool_calls=False,
    )
    (call,) = first.output
    assert call.type == "function_call" and call.name == "get_weather" and call.call_id.startswith("call_")
    Weather.model_validate_json(call.arguments)
    assert first.status == "completed" and episode(sessions, first.id).tool_calls[0]["id"] == call.call_id

    conversation = [{"role": "user", "content": QUESTION}, *first.output,
                    {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 24 degrees."}]
    second = client.responses.create(model="reverie", input=conversation, tools=[WEATHER_TOOL], tool_choice="none",
                                     max_output_tokens=4)
    assert second.output[0].type == "message"
    messages = episode(sessions, second.id).messages
    assert messages[1]["role"] == "assistant" and messages[1]["tool_calls"][0]["id"] == call.call_id
    assert messages[1]["tool_calls"][0]["function"]["arguments"] == json.loads(call.arguments)
    assert messages[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "Sunny, 24 degrees."}


def test_a_streamed_call_sends_its_arguments_in_pieces(client):
    events = list(client.responses.create(
        model="reverie", input=QUESTION, tools=[WEATHER_TOOL], tool_choice="required", parallel_tool_calls=False,
        max_output_tokens=60, stream=True,
    ))
    kinds = [event.type for event in events]
    assert kinds[2] == "response.output_item.added" and events[2].item.type == "function_call"
    assert kinds[-3:] == ["response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    pieces = [event.delta for event in events if event.type == "response.function_call_arguments.delta"]
    assert len(pieces) > 1 and "".join(pieces) == events[-3].arguments == events[-1].response.output[0].arguments
    Weather.model_validate_json(events[-3].arguments)


@pytest.mark.parametrize("extra, param", [
    ({"previous_response_id": "resp_123"}, "previous_response_id"),
    ({"store": True}, "store"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"tools": [{"type": "web_search"}]}, "tools"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "https://x/y.png"}]}]}, "input"),
    ({"input": [{"type": "reasoning", "summary": []}]}, "input"),
    ({"text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "string", "format": "no-such"}}}},
     "text.format"),
    ({"tool_choice": "required"}, "tool_choice"),
])
def test_what_cannot_be_served_is_a_400_naming_it_and_records_nothing(server, extra, param):
    base_url, sessions = server
    with sessions() as session:
        before = session.scalar(select(func.count(Episode.id)))
    body = {"model": "reverie", "input": "Hi", "max_output_tokens": 4, **extra}
    r = httpx.post(f"{base_url}/v1/responses", json=body, headers={"Authorization": "Bearer k1"}, timeout=60)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"].split(".")[0] == param.split(".")[0] and error["type"] == "invalid_request_error", error
    with sessions() as session:
        assert session.scalar(select(func.count(Episode.id))) == before


def test_store_false_is_honoured_and_unknown_fields_are_accepted_and_logged(server, client, caplog):
    caplog.set_level(logging.INFO, logger="service.serving.protocol_responses")
    response = client.responses.create(model="reverie", input="Hi", max_output_tokens=2, store=False,
                                       extra_body={"top_k": 5})
    assert response.store is False
    logged = [r.getMessage() for r in caplog.records if "OpenAI does not define" in r.getMessage()]
    assert logged == ["ignoring request fields OpenAI does not define: 'top_k'"]
