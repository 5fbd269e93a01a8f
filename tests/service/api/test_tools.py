"""Tools (issue 24) on the local engine, over a real uvicorn server with the official `openai` client.

The tool model is the tiny random model with a Hermes-style template that takes tools
(tests/data/hermes_tools.jinja); SmolLM2's own template takes none. A random model calls nothing of its
own accord, so a call that is well formed and matches its schema shows the grammar of tool_choice
required or named, not the model. Schemas bound their strings, as in test_structured_output.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Annotated, Literal

import httpx
import openai
import pytest
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from service.api.dashboard import _content
from service.app import create_app
from service.config import Settings
from service.store.db import make_engine, make_sessionmaker, upgrade
from service.store.models import Episode
from tests.servers import server_in_thread

pytestmark = [pytest.mark.model]

TEMPLATE = Path(__file__).resolve().parents[2] / "data" / "hermes_tools.jinja"
MESSAGES = [{"role": "user", "content": "What is the weather in Lyon?"}]
SEEDS = range(4)


class Weather(BaseModel):
    city: Annotated[str, Field(max_length=10)]
    unit: Literal["celsius", "fahrenheit"]
    days: Annotated[int, Field(ge=1, le=7)]


class Note(BaseModel):
    text: Annotated[str, Field(max_length=12)]


def function(name: str, model: type[BaseModel] | None, description: str = "") -> dict:
    parameters = model.model_json_schema() if model else {"type": "object", "properties": {}}
    if model:
        parameters["additionalProperties"] = False
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


TOOLS = [function("get_weather", Weather, "The forecast for a city."), function("save_note", Note, "Keep a note.")]
SCHEMAS = {"get_weather": Weather, "save_note": Note}


def serve(model_dir: Path, data: Path):
    settings = Settings(
        data_dir=data, database_url=f"sqlite:///{data / 'store.db'}", model=str(model_dir), api_keys="k1:one",
        admin_key="adm-0123456789abcdef", scheduler=False, embedded_worker=False, torch_threads=1, max_choices=3,
    )
    upgrade(settings.resolved_database_url)
    return settings, server_in_thread(create_app(settings))


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("tool-model") / "tiny-hermes"
    shutil.copytree(tiny_model_dir, model_dir)
    (model_dir / "chat_template.jinja").write_text(TEMPLATE.read_text())
    settings, running = serve(model_dir, tmp_path_factory.mktemp("tools"))
    engine = make_engine(settings.resolved_database_url)
    with running as base_url:
        yield base_url, make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server[0]}/v1", api_key="k1", max_retries=0)


def episode(sessions, reply_id: str) -> Episode:
    with sessions() as session:
        return session.get(Episode, uuid.UUID(reply_id.removeprefix("chatcmpl-")))


def check_call(call) -> BaseModel:
    """The call is well formed: OpenAI's shape, an offered function, arguments valid for its schema."""
    assert call.type == "function" and call.id.startswith("call_")
    return SCHEMAS[call.function.name].model_validate_json(call.function.arguments)


def test_tool_choice_required_always_gives_well_formed_calls(client):
    for seed in SEEDS:
        reply = client.chat.completions.create(
            model="reverie", messages=MESSAGES, tools=TOOLS, tool_choice="required", max_tokens=150, seed=seed, n=2,
        )
        for choice in reply.choices:
            assert choice.finish_reason == "tool_calls", choice.message
            assert choice.message.content is None and choice.message.tool_calls
            for call in choice.message.tool_calls:
                check_call(call)


def test_a_named_function_is_the_one_called_once_when_parallel_calls_are_off(client):
    names = set()
    for seed in SEEDS:
        for name in SCHEMAS:
            reply = client.chat.completions.create(
                model="reverie", messages=MESSAGES, tools=TOOLS, max_tokens=150, seed=seed, parallel_tool_calls=False,
                tool_choice={"type": "function", "function": {"name": name}},
            )
            (call,) = reply.choices[0].message.tool_calls
            assert call.function.name == name and isinstance(check_call(call), SCHEMAS[name])
            names.add(call.function.name)
        reply = client.chat.completions.create(
            model="reverie", messages=MESSAGES, tools=TOOLS, tool_choice="required", parallel_tool_calls=False,
            max_tokens=150, seed=seed,
        )
        assert len(reply.choices[0].message.tool_calls) == 1
    assert names == set(SCHEMAS)


def test_streamed_tool_calls_reassemble_to_the_unstreamed_call(client):
    for seed in SEEDS:
        ask = dict(model="reverie", messages=MESSAGES, tools=TOOLS, tool_choice="required", max_tokens=150, seed=seed)
        chunks = list(client.chat.completions.create(**ask, stream=True))
        pieces = [piece for c in chunks if c.choices for piece in c.choices[0].delta.tool_calls or []]
        calls: dict[int, dict] = {}
        for piece in pieces:
            call = calls.setdefault(piece.index, {"id": piece.id, "name": piece.function.name, "arguments": ""})
            if piece.id:  # only the first piece of a call names it
                assert piece.function.name and piece.function.arguments == "" and call["id"] == piece.id
            else:
                assert piece.function.name is None
            call["arguments"] += piece.function.arguments or ""
        assert len(pieces) > 2 * len(calls)  # the arguments came in more than one piece
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finish == ["tool_calls"]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ""
        whole = client.chat.completions.create(**ask).choices[0].message.tool_calls
        assert [(c["name"], c["arguments"]) for c in calls.values()] == [
            (call.function.name, call.function.arguments) for call in whole
        ]
        for call in calls.values():
            SCHEMAS[call["name"]].model_validate_json(call["arguments"])


def test_tool_choice_none_gives_text_and_does_not_offer_the_tools(client):
    without = client.chat.completions.create(model="reverie", messages=MESSAGES, max_tokens=8, seed=1)
    none = client.chat.completions.create(
        model="reverie", messages=MESSAGES, tools=TOOLS, tool_choice="none", max_tokens=8, seed=1
    )
    auto = client.chat.completions.create(model="reverie", messages=MESSAGES, tools=TOOLS, max_tokens=8, seed=1)
    assert none.choices[0].message.tool_calls is None and none.choices[0].message.content
    assert none.choices[0].finish_reason in ("stop", "length")
    # "none": the template never saw the tools (the same prompt as without); auto (the default) offers them
    assert none.usage.prompt_tokens == without.usage.prompt_tokens < auto.usage.prompt_tokens
    assert none.choices[0].message.content == without.choices[0].message.content


def test_a_tool_result_conversation_round_trips_and_is_recorded_readably(server, client):
    _, sessions = server
    first = client.chat.completions.create(
        model="reverie", messages=MESSAGES, tools=TOOLS, max_tokens=150, seed=2,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    call = first.choices[0].message.tool_calls[0]
    recorded = episode(sessions, first.id)
    assert recorded.finish_reason == "tool_calls" and recorded.response == ""
    assert recorded.tool_calls == [{"id": call.id, "type": "function", "function": {
        "name": "get_weather", "arguments": json.loads(call.function.arguments)}}]
    assert recorded.params["tool_choice"]["function"]["name"] == "get_weather" and len(recorded.params["tools"]) == 2

    # the reply's message object as it came, as the README's example sends it back
    conversation = [*MESSAGES, first.choices[0].message,
                    {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 24 degrees."}]
    second = client.chat.completions.create(
        model="reverie", messages=conversation, tools=TOOLS, tool_choice="none", max_tokens=8, seed=2
    )
    assert second.choices[0].message.content
    # the call and its result were rendered into the prompt, by the template
    shorter = client.chat.completions.create(
        model="reverie", messages=MESSAGES, tools=TOOLS, tool_choice="none", max_tokens=8, seed=2
    )
    assert second.usage.prompt_tokens > shorter.usage.prompt_tokens + 15
    messages = episode(sessions, second.id).messages
    assert messages[1]["tool_calls"][0]["function"] == recorded.tool_calls[0]["function"]
    assert messages[2] == {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 24 degrees."}
    assert "→ get_weather({" in _content(messages[1])  # as the dashboard shows them
    assert _content(messages[2]) == f"(result of {call.id})\nSunny, 24 degrees."


def test_an_idempotent_replay_gives_the_recorded_calls_back(server):
    base_url, _ = server
    body = {"model": "reverie", "messages": MESSAGES, "tools": TOOLS, "tool_choice": "required", "max_tokens": 150,
            "seed": 3}
    headers = {"Authorization": "Bearer k1", "Idempotency-Key": f"tools-{uuid.uuid4()}"}
    first = httpx.post(f"{base_url}/v1/chat/completions", json=body, headers=headers, timeout=120).json()
    again = httpx.post(f"{base_url}/v1/chat/completions", json=body, headers=headers, timeout=120).json()
    assert again["choices"] == first["choices"] and first["choices"][0]["message"]["tool_calls"]


@pytest.mark.parametrize(
    "extra, param",
    [
        ({"tool_choice": {"type": "function", "function": {"name": "get_wind"}}}, "tool_choice"),
        ({"tool_choice": "required", "tools": []}, "tool_choice"),
        ({"tools": [TOOLS[0], TOOLS[0]]}, "tools"),
        ({"tool_choice": "required", "tools": [{"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "properties": {"x": {"type": "string", "format": "no-such-format"}}}}}]}, "tools"),
    ],
)
def test_tool_requests_that_cannot_be_served_are_400_and_record_nothing(server, extra, param):
    base_url, sessions = server
    with sessions() as session:
        before = session.scalar(select(func.count(Episode.id)))
    body = {"model": "reverie", "messages": MESSAGES, "tools": TOOLS, "max_tokens": 8, **extra}
    r = httpx.post(f"{base_url}/v1/chat/completions", json=body, headers={"Authorization": "Bearer k1"}, timeout=60)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param
    with sessions() as session:
        assert session.scalar(select(func.count(Episode.id))) == before


def test_a_template_without_tools_is_a_400_naming_tools(tiny_model_dir, tmp_path):
    _, running = serve(tiny_model_dir, tmp_path)  # SmolLM2's own template, which never reads `tools`
    with running as base_url:
        plain = openai.OpenAI(base_url=f"{base_url}/v1", api_key="k1", max_retries=0)
        with pytest.raises(openai.BadRequestError) as caught:
            plain.chat.completions.create(model="reverie", messages=MESSAGES, tools=TOOLS, max_tokens=8)
        assert caught.value.param == "tools" and "does not support tools" in caught.value.message
        # tool_choice "none" asks for no tools: text, as without them
        reply = plain.chat.completions.create(
            model="reverie", messages=MESSAGES, tools=TOOLS, tool_choice="none", max_tokens=4
        )
        assert reply.choices[0].message.content and reply.choices[0].message.tool_calls is None
