"""Issue 24's sampling fields over a real uvicorn server and the official `openai` client, on the local
engine: logprobs in OpenAI's shape (streamed too), logit_bias and penalties, n choices (the first is the
episode), and GET /v1/models/{id}."""

from __future__ import annotations

import uuid

import httpx
import openai
import pytest
from sqlalchemy import func, select

from service.config import Settings
from service.store.models import Episode
from tests.servers import served_with_store

pytestmark = [pytest.mark.model]

MESSAGES = [{"role": "user", "content": "Hello! Tell me a story."}]
PARIS = "7042"  # "ĠParis" in SmolLM2's tokenizer, which the tiny model shares


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    data = tmp_path_factory.mktemp("choices")
    settings = Settings(
        data_dir=data, database_url=f"sqlite:///{data / 'store.db'}", model=str(tiny_model_dir), api_keys="k1:one",
        admin_key="adm-0123456789abcdef", scheduler=False, embedded_worker=False, max_choices=3,
    )
    with served_with_store(settings) as (base_url, sessions):
        yield base_url, sessions


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server[0]}/v1", api_key="k1", max_retries=0)


def episode(sessions, response_id: str) -> Episode:
    with sessions() as session:
        return session.get(Episode, uuid.UUID(response_id.removeprefix("chatcmpl-")))


def count(sessions) -> int:
    with sessions() as session:
        return session.scalar(select(func.count(Episode.id)))


def test_logprobs_in_openais_shape_streamed_alike(client):
    ask = dict(model="reverie", messages=MESSAGES, max_tokens=8, temperature=0.7, seed=3, logprobs=True, top_logprobs=2)
    reply = client.chat.completions.create(**ask)
    content = reply.choices[0].logprobs.content
    assert len(content) == reply.usage.completion_tokens == 8
    assert b"".join(bytes(entry.bytes) for entry in content).decode() == reply.choices[0].message.content
    for entry in content:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 2
        assert entry.top_logprobs[0].logprob >= entry.top_logprobs[1].logprob
    streamed = list(client.chat.completions.create(**ask, stream=True))
    pieces = [entry for chunk in streamed if chunk.choices and chunk.choices[0].logprobs
              for entry in chunk.choices[0].logprobs.content]
    assert [(e.token, e.bytes) for e in pieces] == [(e.token, e.bytes) for e in content]
    assert [e.logprob for e in pieces] == pytest.approx([e.logprob for e in content], abs=1e-5)
    # not asked for, not sent
    plain = client.chat.completions.create(**{**ask, "logprobs": None, "top_logprobs": None})
    assert plain.choices[0].logprobs is None and plain.choices[0].message.content == reply.choices[0].message.content


def test_logit_bias_and_frequency_penalty_reach_the_model(client):
    ask = dict(model="reverie", messages=MESSAGES, max_tokens=6, temperature=0, logit_bias={PARIS: 3})
    assert client.chat.completions.create(**ask).choices[0].message.content == " Paris" * 6
    penalized = client.chat.completions.create(**ask, frequency_penalty=2).choices[0].message.content
    assert penalized.startswith(" Paris") and penalized.count(" Paris") < 6
    assert client.chat.completions.create(**ask, presence_penalty=2).choices[0].message.content == " Paris" * 6


def test_n_choices_the_first_is_the_episode(server, client):
    _, sessions = server
    ask = dict(model="reverie", messages=MESSAGES, max_tokens=5, temperature=1.0, seed=21, n=3)
    reply = client.chat.completions.create(**ask)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    texts = [c.message.content for c in reply.choices]
    assert len(set(texts)) == 3 and all(c.finish_reason == "length" for c in reply.choices)
    assert reply.usage.completion_tokens == 15
    recorded = episode(sessions, reply.id)
    assert (recorded.response, recorded.finish_reason, recorded.status) == (texts[0], "length", "complete")
    assert (recorded.completion_tokens, recorded.params["n"]) == (15, 3)

    chunks = list(client.chat.completions.create(**ask, stream=True, stream_options={"include_usage": True}))
    streamed = {0: "", 1: "", 2: ""}
    roles, finishes = [], []
    for chunk in chunks:
        for choice in chunk.choices:
            streamed[choice.index] += choice.delta.content or ""
            roles += [choice.index] if choice.delta.role else []
            finishes += [choice.index] if choice.finish_reason else []
    assert list(streamed.values()) == texts  # same seed, same three choices
    assert roles == [0, 1, 2] and finishes == [0, 1, 2] and chunks[-1].usage.completion_tokens == 15
    assert episode(sessions, chunks[0].id).response == texts[0]


@pytest.mark.parametrize("field, value", [("n", 2), ("logprobs", True)])
def test_an_idempotency_key_cannot_replay_what_the_episode_does_not_hold(server, client, field, value):
    _, sessions = server
    before = count(sessions)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="reverie", messages=MESSAGES, max_tokens=2, extra_headers={"Idempotency-Key": f"key-{field}"},
            **{field: value},
        )
    assert caught.value.param == field
    assert count(sessions) == before


def test_retrieve_a_model_and_404_for_another(server, client):
    model = client.models.retrieve("reverie")
    assert (model.id, model.object, model.owned_by) == ("reverie", "model", "reverie")
    for unknown in ("gpt-4o", "HuggingFaceTB/SmolLM2-135M-Instruct"):
        with pytest.raises(openai.NotFoundError) as caught:
            client.models.retrieve(unknown)
        assert (caught.value.code, caught.value.param) == ("model_not_found", "model")
    assert httpx.get(f"{server[0]}/v1/models/reverie").status_code == 401  # the same key as every /v1 route
