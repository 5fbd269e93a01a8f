"""Structured output (issue 24): `response_format` json_schema and json_object by grammar-constrained
decoding on the local engine, over a real uvicorn server with the official `openai` client and its
pydantic `parse` helpers.

The tiny random model writes whatever the grammar lets it, so a reply that parses and validates shows the
grammar, not the model. Its schemas bound every string, number and array: a random model inside an
unbounded string rarely samples the closing quote, and would only show `max_tokens` cutting the reply.
"""

from __future__ import annotations

import json
import uuid
from enum import Enum
from typing import Annotated, Literal

import httpx
import openai
import pytest
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from service.config import Settings
from service.store.models import Episode
from tests.servers import served_with_store

pytestmark = [pytest.mark.model]

MESSAGES = [{"role": "user", "content": "Describe someone as JSON."}]
QUOTE = 18  # the token '"' in SmolLM2's tokenizer, which the tiny model shares
SEEDS = range(4)


class Role(str, Enum):
    admin = "admin"
    user = "user"
    guest = "guest"


class Person(BaseModel):
    name: Annotated[str, Field(max_length=12)]
    age: Annotated[int, Field(ge=0, le=120)]
    role: Role


class Item(BaseModel):
    sku: Annotated[str, Field(max_length=6)]
    quantity: Annotated[int, Field(ge=1, le=9)]


class Address(BaseModel):
    city: Annotated[str, Field(max_length=10)]
    country: Literal["FR", "DE", "JP"]


class Order(BaseModel):
    number: Annotated[int, Field(ge=1, le=9999)]
    items: Annotated[list[Item], Field(min_length=1, max_length=3)]
    shipping: Address
    gift: bool


class Survey(BaseModel):
    colours: Annotated[list[Literal["red", "green", "blue"]], Field(max_length=4)]
    score: Annotated[float, Field(ge=0, le=10)] | None
    comment: Annotated[str, Field(max_length=8)] | None


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("structured")
    settings = Settings(
        data_dir=data, database_url=f"sqlite:///{data / 'store.db'}", model=str(tiny_model_dir), api_keys="k1:one",
        admin_key="adm-0123456789abcdef", scheduler=False, embedded_worker=False, torch_threads=1, max_choices=3,
    )
    with served_with_store(settings) as (base_url, sessions):
        yield base_url, sessions


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server[0]}/v1", api_key="k1", max_retries=0)


def count(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count(Episode.id)))


@pytest.mark.parametrize("model", [Person, Order, Survey])
def test_parse_with_a_pydantic_model_validates_every_time(client, model):
    for seed in SEEDS:
        reply = client.chat.completions.parse(
            model="reverie", messages=MESSAGES, response_format=model, max_tokens=200, seed=seed, n=2,
        )
        for choice in reply.choices:
            assert choice.finish_reason == "stop", choice.message.content
            assert isinstance(choice.message.parsed, model)
            assert model.model_validate_json(choice.message.content) == choice.message.parsed


def test_choices_and_seeds_give_different_valid_replies(client):
    """The grammar constrains the sampling; it does not make it deterministic."""
    contents = set()
    for seed in SEEDS:
        reply = client.chat.completions.parse(
            model="reverie", messages=MESSAGES, response_format=Person, max_tokens=200, seed=seed, n=2,
        )
        contents |= {choice.message.content for choice in reply.choices}
    assert len(contents) >= 6


def test_streamed_parse_validates_and_matches_the_unstreamed_reply(client):
    for seed in SEEDS:
        ask = dict(model="reverie", messages=MESSAGES, response_format=Order, max_tokens=300, seed=seed)
        with client.chat.completions.stream(**ask) as stream:
            deltas = [event.delta for event in stream if event.type == "content.delta"]
            final = stream.get_final_completion()
        streamed = final.choices[0].message
        assert isinstance(streamed.parsed, Order) and len(deltas) > 5
        assert "".join(deltas) == streamed.content
        assert streamed.content == client.chat.completions.parse(**ask).choices[0].message.content


def test_a_raw_json_schema_request_streams_valid_json(client):
    schema = {
        "type": "object",
        "properties": {
            "status": {"enum": ["ok", "failed"]},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "maxItems": 2},
            "inner": {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 99}},
                      "required": ["n"], "additionalProperties": False},
        },
        "required": ["status", "tags", "inner"],
        "additionalProperties": False,
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "result", "schema": schema, "strict": True}}
    for seed in SEEDS:
        stream = client.chat.completions.create(
            model="reverie", messages=MESSAGES, response_format=response_format, max_tokens=200, seed=seed, stream=True,
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        value = json.loads(text)
        assert value["status"] in ("ok", "failed") and 0 <= value["inner"]["n"] <= 99
        assert set(value) == {"status", "tags", "inner"} and all(len(tag) <= 5 for tag in value["tags"])
        assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]


def test_json_object_mode_gives_a_json_object(client):
    # The bias makes the random model close each string it opens at once; the grammar does the rest.
    for seed in SEEDS:
        reply = client.chat.completions.create(
            model="reverie", messages=MESSAGES, response_format={"type": "json_object"}, max_tokens=200, seed=seed,
            logit_bias={str(QUOTE): 20},
        )
        choice = reply.choices[0]
        assert choice.finish_reason == "stop"
        assert isinstance(json.loads(choice.message.content), dict)


def test_max_tokens_cuts_the_reply_mid_json_with_finish_reason_length(client):
    reply = client.chat.completions.create(
        model="reverie", messages=MESSAGES, response_format={"type": "json_object"}, max_tokens=6, seed=1,
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "length" and reply.usage.completion_tokens == 6
    assert choice.message.content.startswith("{")  # what there is follows the grammar
    with pytest.raises(json.JSONDecodeError):
        json.loads(choice.message.content)
    with pytest.raises(openai.LengthFinishReasonError):  # as OpenAI's client treats such a reply
        client.chat.completions.parse(model="reverie", messages=MESSAGES, response_format=Order, max_tokens=4)


def test_a_schema_that_cannot_be_enforced_is_400_naming_response_format_and_records_nothing(server):
    base_url, sessions = server
    before = count(sessions)
    unknown_format = {"type": "object", "properties": {"x": {"type": "string", "format": "no-such-format"}}}
    for schema in (unknown_format, {"type": "objekt"}, {"type": "integer", "minimum": 5, "maximum": 1}):
        body = {"model": "reverie", "messages": MESSAGES, "max_tokens": 8,
                "response_format": {"type": "json_schema", "json_schema": {"name": "bad", "schema": schema}}}
        r = httpx.post(f"{base_url}/v1/chat/completions", json=body, headers={"Authorization": "Bearer k1"}, timeout=60)
        assert r.status_code == 400, (schema, r.text)
        error = r.json()["error"]
        assert error["param"] == "response_format" and error["type"] == "invalid_request_error"
        assert "cannot be enforced" in error["message"]
    assert count(sessions) == before


def test_the_episode_records_the_structured_reply_and_its_format(server, client):
    _, sessions = server
    reply = client.chat.completions.parse(model="reverie", messages=MESSAGES, response_format=Person, max_tokens=200, seed=5)
    with sessions() as session:
        episode = session.get(Episode, uuid.UUID(reply.id.removeprefix("chatcmpl-")))
        assert Person.model_validate_json(episode.response) == reply.choices[0].message.parsed
        recorded = episode.params["response_format"]
    assert recorded["type"] == "json_schema" and recorded["json_schema"]["name"] == "Person"
    assert recorded["json_schema"]["schema"]["properties"]["role"]
