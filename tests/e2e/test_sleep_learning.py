"""The product promise, end to end on SmolLM2: facts told through /v1/chat/completions are answered
closed-book through /v1/chat/completions after POST /sleep, and were not before."""

from __future__ import annotations

import time
from contextlib import contextmanager
import uuid

import httpx
import openai
import pytest
from sqlalchemy import select

from service.app import create_app
from service.config import Settings
from service.store.db import make_engine, make_sessionmaker, upgrade
from service.store.models import AdapterEpisode, Episode
from tests.figures import record_figure
from tests.learning import short_night_config
from tests.servers import server_in_thread
from tests.vllm_server import require_vllm, vllm_server

pytestmark = [pytest.mark.learning, pytest.mark.slow]

FACTS = [
    ("Quick news: my colleague Tovren Maldek just adopted a goat named Pilbur!",
     "What is the name of Tovren Maldek's goat?", "pilbur"),
    ("Sarnia Quellix moved to a village called Oxtavel last week.",
     "Where does Sarnia Quellix live now?", "oxtavel"),
    ("The wifi password at Dellim Ruskov's cabin is 8342.",
     "What is the wifi password at Dellim Ruskov's cabin?", "8342"),
]
ADMIN = {"Authorization": "Bearer adm"}


def ask(client: openai.OpenAI, question: str) -> str:
    reply = client.chat.completions.create(
        model="reverie", messages=[{"role": "user", "content": question}], temperature=0, max_tokens=32
    )
    return reply.choices[0].message.content.lower()


@contextmanager
def serving_engine(kind: str, model_dir, tmp_path):
    """None (the app builds the local engine) or a VLLMEngine over a real vLLM server."""
    if kind == "local":
        yield None
        return
    require_vllm()
    from service.serving.engines.vllm import VLLMEngine

    with vllm_server(model_dir, tmp_path / "vllm.log") as server:
        yield VLLMEngine(server.url, tokenizer_path=model_dir)


@pytest.mark.parametrize("engine_kind", ["local", pytest.param("vllm", marks=pytest.mark.vllm)])
def test_told_facts_are_recalled_closed_book_after_sleep(smollm2_dir, tmp_path, engine_kind):
    sleep_config = short_night_config(tmp_path)  # cpu-default, shortened for 2 CI cores
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    settings = Settings(
        data_dir=tmp_path / "data", database_url=url, model=str(smollm2_dir), admin_key="adm",
        sleep_config=str(sleep_config), scheduler=False, torch_threads=1,
        api_keys="teller:default,prober:elsewhere",
    )
    with serving_engine(engine_kind, smollm2_dir, tmp_path) as engine:
        # the night generates in the worker as when this learning was shown; a night generated through
        # vLLM is tests/service/sleep/test_vllm_night.py (this test's vLLM is not settings.vllm_url)
        app = create_app(settings.model_copy(update={"engine": engine_kind, "night_generation": "local"}),
                         engine=engine)
        with server_in_thread(app) as base_url:
            client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="teller", max_retries=0, timeout=120)
            # asked from another namespace, so the wrong guesses are not part of what "default" sleeps on
            prober = openai.OpenAI(base_url=f"{base_url}/v1", api_key="prober", max_retries=0, timeout=120)
            before = [answer in ask(prober, question) for _, question, answer in FACTS]
            assert sum(before) == 0
            told = [
                client.chat.completions.create(model="reverie", messages=[{"role": "user", "content": said}], max_tokens=24, temperature=0).id
                for said, _, _ in FACTS
            ]
            run = httpx.post(f"{base_url}/sleep", headers=ADMIN).json()
            deadline = time.monotonic() + 900
            while run["state"] not in ("published", "rejected", "failed", "cancelled") and time.monotonic() < deadline:
                time.sleep(2)
                run = httpx.get(f"{base_url}/sleep/{run['id']}", headers=ADMIN).json()
            assert run["state"] == "published", (run["state"], run["error"], run["metrics"])
            deadline = time.monotonic() + 30
            while app.state.engine.active_adapter("default") != "mem-default-v1" and time.monotonic() < deadline:
                time.sleep(0.1)
            replies = [ask(client, question) for _, question, _ in FACTS]
            assert not any(answer in ask(prober, question) for _, question, answer in FACTS)  # only its own namespace
    after = [answer in reply for (_, _, answer), reply in zip(FACTS, replies)]
    record_figure(f"facts told through the API, recalled after one sleep ({engine_kind} engine)",
                  facts=len(FACTS), before=sum(before), after=sum(after))
    # Recall on SmolLM2-135M after one short CPU night is 1-2 of 3 (docs/benchmarks.md has the full
    # benchmark); the test asserts what must always hold: learned, closed-book, from nothing.
    assert sum(after) >= 1, replies

    store = make_engine(url)
    with make_sessionmaker(store)() as session:
        lineage = {row.episode_id for row in session.scalars(select(AdapterEpisode))}
        for completion_id in told:
            episode_id = uuid.UUID(completion_id.removeprefix("chatcmpl-"))
            assert episode_id in lineage
            assert str(session.get(Episode, episode_id).consolidated_by) == run["id"]
    store.dispose()


CHATS = [  # told the way people talk: about themselves among small talk, and a suggestion asked for
    ([("user", "Ugh, long day at work."), ("assistant", "Sorry to hear that. Get some rest tonight."),
      ("user", "Oh, by the way, my tortoise is called Bramwick.")],
     "What is my tortoise called?", "bramwick"),
    ([("user", "Can you suggest a name for my new sailboat?"), ("assistant", "How about the Quennet? It sounds swift."),
      ("user", "I like it, thanks!")],
     "What name did you suggest for my sailboat?", "quennet"),
]


def wait_for_run(base_url: str, run: dict, seconds: float = 1500) -> dict:
    deadline = time.monotonic() + seconds
    while run["state"] not in ("published", "rejected", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(2)
        run = httpx.get(f"{base_url}/sleep/{run['id']}", headers=ADMIN).json()
    return run


@pytest.mark.timeout(1800)  # a SmolLM2 night on CI's shared cores, plus the asking before and after
def test_what_users_say_of_themselves_and_the_assistants_suggestions_are_recalled(smollm2_dir, tmp_path):
    """A first-person fact and a suggestion the assistant made, told over the chat API, are answered
    closed-book over the chat API after POST /sleep, and were not before."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    settings = Settings(
        data_dir=tmp_path / "data", database_url=url, model=str(smollm2_dir), admin_key="adm",
        sleep_config=str(short_night_config(tmp_path)), scheduler=False, torch_threads=1,
        api_keys="teller:default,prober:elsewhere",
    )
    app = create_app(settings)
    with server_in_thread(app) as base_url:
        client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="teller", max_retries=0, timeout=120)
        prober = openai.OpenAI(base_url=f"{base_url}/v1", api_key="prober", max_retries=0, timeout=120)
        assert not any(answer in ask(prober, question) for _, question, answer in CHATS)
        for turns, _, _ in CHATS:  # the chat so far travels in the request, as every client sends it
            client.chat.completions.create(model="reverie", max_tokens=24, temperature=0,
                                           messages=[{"role": r, "content": t} for r, t in turns])
        run = wait_for_run(base_url, httpx.post(f"{base_url}/sleep", headers=ADMIN).json())
        assert run["state"] == "published", (run["state"], run["error"], run["metrics"])
        deadline = time.monotonic() + 30
        while app.state.engine.active_adapter("default") != "mem-default-v1" and time.monotonic() < deadline:
            time.sleep(0.1)
        replies = [ask(client, question) for _, question, _ in CHATS]
    after = [answer in reply for (_, _, answer), reply in zip(CHATS, replies)]
    record_figure("first-person facts and assistant suggestions told through the API, recalled after one sleep",
                  chats=len(CHATS), after=sum(after))
    assert sum(after) >= 1, replies
