"""The local engine on a tiny random Llama (SmolLM2's tokenizer) and, once, on SmolLM2 itself."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import torch

from tests.adapters import make_lora
from service.serving.engines.base import AdapterInfo, GenerationRequest, SamplingParams
from service.serving.engines.local import LocalEngine
from service.serving.engines.sampling import REPLACEMENT_CHAR
from service.errors import AdapterError, EngineError, EngineNotReadyError, InvalidRequestError, QueueFullError

pytestmark = [pytest.mark.model]

HELLO = [{"role": "user", "content": "Hello! Tell me a story."}]
# The tiny random model's logits are nearly flat: at temperature 1 a LoRA's shift rarely changes a seeded
# draw, while at this temperature sampling still varies but follows the logits closely.
ADAPTER_T = 0.03


def req(max_tokens=16, temperature=0.0, seed=None, stop=(), namespace="default", top_p=1.0, messages=HELLO, **more):
    params = SamplingParams(
        max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed, stop=tuple(stop), **more
    )
    return GenerationRequest(messages=messages, params=params, namespace=namespace)


async def run(engine, request):
    """Collect a whole generation: (text, chunks)."""
    chunks = [chunk async for chunk in engine.generate(request)]
    assert all(c.finish_reason is None and c.usage is None for c in chunks[:-1])
    assert chunks[-1].finish_reason is not None and chunks[-1].usage is not None
    assert not any(c.text.endswith(REPLACEMENT_CHAR) for c in chunks)
    return "".join(c.text for c in chunks), chunks


async def text_of(engine, **kwargs) -> str:
    return (await run(engine, req(**kwargs)))[0]


def transformers_greedy(model_dir, messages, max_new_tokens) -> tuple[str, int]:
    """The reference: transformers' own `generate`, greedy: (text, generated token count)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    prompt = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**prompt, max_new_tokens=max_new_tokens, do_sample=False)
    new_ids = out[0, prompt["input_ids"].shape[1] :]
    return tokenizer.decode(new_ids, skip_special_tokens=True), len(new_ids)


@pytest.fixture(scope="module")
async def engine(tiny_model_dir):
    engine = LocalEngine(tiny_model_dir)
    assert not engine.ready
    await engine.start()
    assert engine.ready and engine.max_model_len == 512
    yield engine
    await engine.stop()


@pytest.fixture
async def fresh_engine(tiny_model_dir):
    """An engine of its own, for tests that change adapters or the queue."""
    engines = []

    async def make(**kwargs):
        engines.append(LocalEngine(tiny_model_dir, **kwargs))
        await engines[-1].start()
        return engines[-1]

    yield make
    for engine in engines:
        await engine.stop()


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def loras(tiny_model_dir, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("loras")
    return make_lora(tiny_model_dir, root / "one", seed=1), make_lora(tiny_model_dir, root / "two", seed=2)


# --- decoding ------------------------------------------------------------------------------------------


async def test_greedy_is_deterministic_and_matches_transformers_generate(engine, tiny_model_dir):
    first, chunks = await run(engine, req(max_tokens=12))
    assert (await text_of(engine, max_tokens=12)) == first
    assert (first, chunks[-1].usage.completion_tokens) == transformers_greedy(tiny_model_dir, HELLO, 12)


async def test_seed_reproduces_and_different_seeds_differ(engine):
    one = await text_of(engine, temperature=1.0, seed=1)
    assert await text_of(engine, temperature=1.0, seed=1) == one
    assert await text_of(engine, temperature=1.0, seed=2) != one
    assert await text_of(engine, temperature=1.0, top_p=0.9, seed=1) == await text_of(
        engine, temperature=1.0, top_p=0.9, seed=1
    )


async def test_max_tokens_ends_with_length_and_usage_counts_tokens(engine, tokenizer):
    _, chunks = await run(engine, req(max_tokens=7, temperature=1.0, seed=3))
    last = chunks[-1]
    assert last.finish_reason == "length"
    templated = tokenizer.apply_chat_template(HELLO, add_generation_prompt=True, return_dict=True)
    prompt_ids = templated["input_ids"]
    assert last.usage.prompt_tokens == len(prompt_ids) == engine.count_prompt_tokens(HELLO)
    assert last.usage.completion_tokens == 7
    assert last.usage.total_tokens == len(prompt_ids) + 7


async def test_stop_string_cuts_and_is_excluded(engine):
    full = await text_of(engine, max_tokens=24, temperature=1.0, seed=5)
    assert len(full) > 12
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    cut = full.find(stop)
    text, chunks = await run(engine, req(max_tokens=24, temperature=1.0, seed=5, stop=[stop, "never seen"]))
    assert text == full[:cut]
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage.completion_tokens < 24


async def test_logprobs_are_the_models_own_and_spell_the_text(engine, tokenizer, tiny_model_dir):
    text, chunks = await run(engine, req(max_tokens=10, temperature=0.5, seed=4, logprobs=3))
    entries = [entry for chunk in chunks for entry in chunk.logprobs]
    assert len(entries) == chunks[-1].usage.completion_tokens == 10  # max_tokens: no end-of-sequence token
    assert b"".join(bytes(entry.bytes) for entry in entries).decode("utf-8") == text
    for entry in entries:
        top = [t.logprob for t in entry.top]
        assert len(top) == 3 and top == sorted(top, reverse=True)
        assert entry.logprob <= entry.top[0].logprob <= 0
    # the first step's log-probabilities are the model's own, before temperature (as vLLM reports them)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    prompt = tokenizer.apply_chat_template(HELLO, add_generation_prompt=True, return_dict=True)["input_ids"]
    with torch.inference_mode():
        expected = torch.log_softmax(model(input_ids=torch.tensor([prompt])).logits[0, -1], dim=-1)
    assert [t.logprob for t in entries[0].top] == pytest.approx(torch.topk(expected, 3).values.tolist(), abs=1e-4)
    assert torch.isclose(expected, torch.tensor(entries[0].logprob), atol=1e-5).any()
    # greedy: the chosen token is the most likely one; without logprobs asked, chunks carry none
    _, greedy = await run(engine, req(max_tokens=4, logprobs=0))
    assert all(entry.top == () for chunk in greedy for entry in chunk.logprobs)
    assert all(chunk.logprobs is None for chunk in (await run(engine, req(max_tokens=4)))[1])


async def test_logit_bias_and_penalties_follow_openais_formula(engine, tokenizer):
    paris = tokenizer.convert_tokens_to_ids("ĠParis")
    newline = tokenizer.encode("\n", add_special_tokens=False)[0]
    assert set(await text_of(engine, max_tokens=8)) == {"\n"}  # the tiny model's greedy reply
    assert "\n" not in await text_of(engine, max_tokens=8, logit_bias={newline: -100.0})
    boosted = dict(max_tokens=8, logit_bias={paris: 3.0})
    assert await text_of(engine, **boosted) == " Paris" * 8
    # presence: a flat 2 once the token appeared, less than its bias of 3, so it keeps winning
    assert await text_of(engine, **boosted, presence_penalty=2.0) == " Paris" * 8
    # frequency: 2 per earlier occurrence, which soon outweighs the bias
    penalized = await text_of(engine, **boosted, frequency_penalty=2.0)
    assert penalized.startswith(" Paris") and 1 <= penalized.count(" Paris") < 8


async def test_n_choices_share_a_batch_and_differ_under_one_seed(engine):
    async def choices(**params):
        chunks = [chunk async for chunk in engine.generate(req(**params))]
        assert [chunk.usage is not None for chunk in chunks].count(True) == 1 and chunks[-1].usage is not None
        texts: dict[int, str] = {}
        for chunk in chunks:
            texts[chunk.index] = texts.get(chunk.index, "") + chunk.text
        assert sorted(c.index for c in chunks if c.finish_reason) == list(range(params["n"]))
        return [texts.get(i, "") for i in range(params["n"])], chunks[-1].usage

    sampled, usage = await choices(n=3, max_tokens=6, temperature=1.0, seed=9)
    assert len(set(sampled)) == 3  # one generator draws for all rows: the choices differ
    assert usage.completion_tokens == 18 and usage.prompt_tokens == engine.count_prompt_tokens(HELLO)
    assert (await choices(n=3, max_tokens=6, temperature=1.0, seed=9))[0] == sampled
    greedy, _ = await choices(n=2, max_tokens=6)
    assert greedy == [await text_of(engine, max_tokens=6)] * 2


async def test_prompt_plus_max_tokens_over_the_context_is_refused(engine):
    prompt = engine.count_prompt_tokens(HELLO)
    with pytest.raises(InvalidRequestError) as err:
        await text_of(engine, max_tokens=engine.max_model_len - prompt + 1)
    assert err.value.param == "max_tokens"
    _, chunks = await run(engine, req(max_tokens=engine.max_model_len - prompt))
    assert chunks[-1].usage.total_tokens == engine.max_model_len


# --- queueing, cancellation, failures ----------------------------------------------------------------


async def test_full_queue_refuses_before_yielding(fresh_engine):
    engine = await fresh_engine(max_queue=1)
    received: list[list] = [[] for _ in range(5)]

    async def consume(i):
        async for chunk in engine.generate(req(max_tokens=20)):
            received[i].append(chunk)

    results = await asyncio.gather(*(consume(i) for i in range(5)), return_exceptions=True)
    refused = [i for i, r in enumerate(results) if isinstance(r, QueueFullError)]
    served = [i for i, r in enumerate(results) if r is None]
    assert refused and served and len(refused) + len(served) == 5
    assert all(received[i] == [] for i in refused)
    assert all(received[i][-1].finish_reason == "length" for i in served)
    assert (await text_of(engine, max_tokens=3)) is not None  # the queue drains and serves again


def count_forwards(engine) -> list[int]:
    calls = [0]
    engine._base.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


async def test_closing_the_stream_stops_the_generation(fresh_engine):
    engine = await fresh_engine()
    calls = count_forwards(engine)
    stream = engine.generate(req(max_tokens=450, temperature=1.0, seed=0))
    await anext(stream)
    await stream.aclose()
    started = time.monotonic()
    _, chunks = await run(engine, req(max_tokens=5))
    assert chunks[-1].usage.completion_tokens == 5
    assert time.monotonic() - started < 5
    # The first request stopped within a few tokens of aclose instead of running to 450.
    assert calls[0] < 100


async def test_cancelling_the_consumer_task_stops_the_generation(fresh_engine):
    engine = await fresh_engine()
    calls = count_forwards(engine)
    first_chunk = asyncio.Event()

    async def consume():
        async for _ in engine.generate(req(max_tokens=450, temperature=1.0, seed=0)):
            first_chunk.set()

    task = asyncio.create_task(consume())
    await first_chunk.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    _, chunks = await run(engine, req(max_tokens=5))
    assert chunks[-1].finish_reason == "length"
    assert calls[0] < 100


async def test_model_failure_reaches_the_consumer_as_engine_error(fresh_engine):
    engine = await fresh_engine()

    def explode(*_):
        raise RuntimeError("boom")

    hook = engine._base.register_forward_hook(explode)
    with pytest.raises(EngineError, match="boom"):
        await asyncio.wait_for(text_of(engine), timeout=10)
    hook.remove()
    assert await text_of(engine, max_tokens=3) is not None


async def test_stop_fails_running_and_waiting_requests_and_restart_serves(fresh_engine):
    engine = await fresh_engine()
    running = engine.generate(req(max_tokens=450, temperature=1.0, seed=0))
    await anext(running)
    waiting = asyncio.ensure_future(text_of(engine, max_tokens=5))
    await asyncio.sleep(0.05)
    await engine.stop()
    assert not engine.ready
    with pytest.raises(EngineNotReadyError):
        async for _ in running:
            pass
    with pytest.raises(EngineNotReadyError):
        await asyncio.wait_for(waiting, timeout=10)
    with pytest.raises(EngineNotReadyError):
        await text_of(engine)
    await engine.start()
    assert await text_of(engine, max_tokens=3) is not None


# --- adapters ----------------------------------------------------------------------------------------


async def test_adapter_serves_only_its_namespace_and_swaps_back_exactly(fresh_engine, loras):
    engine = await fresh_engine()
    sample = dict(max_tokens=16, temperature=ADAPTER_T, seed=11)
    base_greedy, base_sample = await text_of(engine), await text_of(engine, **sample)

    await engine.load_adapter("v1", str(loras[0]))
    assert await text_of(engine, namespace="a", **sample) == base_sample  # loaded is not yet active
    await engine.activate_adapter("a", "v1")
    assert engine.active_adapter("a") == "v1" and engine.active_adapter("b") is None
    assert engine.loaded_adapters() == [AdapterInfo("v1", str(loras[0]), ["a"])]
    adapted_greedy = await text_of(engine, namespace="a")
    adapted_sample = await text_of(engine, namespace="a", **sample)
    assert adapted_greedy != base_greedy and adapted_sample != base_sample
    assert await text_of(engine, namespace="b", **sample) == base_sample
    assert await text_of(engine, namespace="b") == base_greedy

    with pytest.raises(AdapterError, match="still serves"):
        await engine.unload_adapter("v1")
    with pytest.raises(AdapterError, match="already loaded"):
        await engine.load_adapter("v1", str(loras[1]))
    with pytest.raises(AdapterError, match="not loaded"):
        await engine.activate_adapter("a", "nope")
    assert engine.active_adapter("a") == "v1"

    await engine.activate_adapter("a", None)
    assert await text_of(engine, namespace="a", **sample) == base_sample
    assert await text_of(engine, namespace="a") == base_greedy
    await engine.unload_adapter("v1")
    assert engine.loaded_adapters() == []
    assert await text_of(engine, namespace="a", **sample) == base_sample

    # After the last unload the base model is plain again; a new load wraps it afresh.
    await engine.load_adapter("v2", str(loras[0]))
    await engine.activate_adapter("a", "v2")
    assert await text_of(engine, namespace="a", **sample) == adapted_sample


async def test_two_adapters_interleaved_requests_each_get_their_own(fresh_engine, loras):
    engine = await fresh_engine()
    sample = dict(max_tokens=10, temperature=ADAPTER_T, seed=4)
    await engine.load_adapter("one", str(loras[0]))
    await engine.load_adapter("two", str(loras[1]))
    await engine.activate_adapter("a", "one")
    await engine.activate_adapter("b", "two")
    alone = {ns: await text_of(engine, namespace=ns, **sample) for ns in ("a", "b", "c")}
    assert len(set(alone.values())) == 3
    together = await asyncio.gather(*(text_of(engine, namespace=ns, **sample) for ns in ["a", "b", "c"] * 2))
    assert together == [alone[ns] for ns in ["a", "b", "c"] * 2]
    assert await text_of(engine, namespace="a", **sample) == alone["a"]  # "one" was used last
    await engine.activate_adapter("a", None)
    await engine.unload_adapter("one")
    assert [a.name for a in engine.loaded_adapters()] == ["two"]
    assert await text_of(engine, namespace="b", **sample) == alone["b"]
    assert await text_of(engine, namespace="a", **sample) == alone["c"]


async def test_a_request_keeps_the_adapter_it_was_admitted_with(fresh_engine, loras):
    engine = await fresh_engine()
    sample = dict(max_tokens=16, temperature=ADAPTER_T, seed=11)
    await engine.load_adapter("one", str(loras[0]))
    await engine.load_adapter("two", str(loras[1]))
    await engine.activate_adapter("a", "two")
    alone_two = await text_of(engine, namespace="a", **sample)
    await engine.activate_adapter("a", "one")
    alone_one = await text_of(engine, namespace="a", **sample)
    assert alone_one != alone_two

    # A long request holds the worker, so the next one is admitted on "one" and waits while "a" swaps.
    blocker = asyncio.create_task(run(engine, req(max_tokens=300, namespace="b")))
    waiting = asyncio.create_task(run(engine, req(namespace="a", **sample)))
    await asyncio.sleep(0.05)
    await engine.activate_adapter("a", "two")
    await engine.activate_adapter("a", None)
    await engine.unload_adapter("one")  # waits for the admitted request, then frees the adapter
    assert waiting.done()
    text, chunks = await waiting
    assert (text, chunks[0].adapter) == (alone_one, "one")
    assert (await blocker)[1][0].adapter is None
    assert [a.name for a in engine.loaded_adapters()] == ["two"]
    assert (await run(engine, req(namespace="c")))[1][0].adapter is None


async def test_broken_adapters_are_refused_and_change_nothing(fresh_engine, loras, tmp_path, monkeypatch):
    import shutil

    from peft.tuners.tuners_utils import BaseTunerLayer
    from safetensors.torch import load_file, save_file

    engine = await fresh_engine()
    sample = dict(max_tokens=12, temperature=ADAPTER_T, seed=9)
    base = await text_of(engine, **sample)

    no_config = shutil.copytree(loras[0], tmp_path / "no_config")
    (no_config / "adapter_config.json").unlink()
    garbage = shutil.copytree(loras[0], tmp_path / "garbage")
    (garbage / "adapter_model.safetensors").write_bytes(b"not a safetensors file")
    wrong_shape = shutil.copytree(loras[0], tmp_path / "wrong_shape")
    weights = load_file(wrong_shape / "adapter_model.safetensors")
    key = next(k for k in weights if k.endswith("lora_A.weight"))
    weights[key] = torch.zeros(4, 65)
    save_file(weights, wrong_shape / "adapter_model.safetensors")
    with_bias = shutil.copytree(loras[0], tmp_path / "with_bias")
    config = json.loads((with_bias / "adapter_config.json").read_text())
    (with_bias / "adapter_config.json").write_text(json.dumps(config | {"bias": "all"}))

    for folder, message in [
        (tmp_path / "missing", "no adapter_config.json"),
        (no_config, "no adapter_config.json"),
        (garbage, "cannot be read"),
        (wrong_shape, "does not fit"),
        (with_bias, "trains biases"),
    ]:
        with pytest.raises(AdapterError, match=message):
            await engine.load_adapter("bad", str(folder))
        assert engine.loaded_adapters() == []
        assert await text_of(engine, **sample) == base

    # A failure inside peft, after it has injected LoRA layers, is rolled back too.
    import peft.peft_model

    def fail(*args, **kwargs):
        raise RuntimeError("disk vanished")

    monkeypatch.setattr(peft.peft_model, "set_peft_model_state_dict", fail)
    with pytest.raises(AdapterError, match="disk vanished"):
        await engine.load_adapter("bad", str(loras[0]))
    assert not any(isinstance(m, BaseTunerLayer) for m in engine._base.modules())
    assert await text_of(engine, **sample) == base
    monkeypatch.undo()

    await engine.load_adapter("good", str(loras[0]))
    monkeypatch.setattr(peft.peft_model, "set_peft_model_state_dict", fail)
    with pytest.raises(AdapterError, match="disk vanished"):
        await engine.load_adapter("bad", str(loras[1]))
    monkeypatch.undo()
    assert [a.name for a in engine.loaded_adapters()] == ["good"]
    await engine.activate_adapter("default", "good")
    adapted = await text_of(engine, **sample)
    assert adapted != base
    await engine.activate_adapter("default", None)
    assert await text_of(engine, **sample) == base


# --- the real model ----------------------------------------------------------------------------------


@pytest.mark.slow
async def test_smollm2_knows_the_capital_of_france(smollm2_dir):
    question = [{"role": "user", "content": "What is the capital of France?"}]
    engine = LocalEngine(smollm2_dir)
    await engine.start()
    try:
        answer, chunks = await run(engine, req(max_tokens=24, messages=question))
    finally:
        await engine.stop()
    assert "Paris" in answer
    # The engine's own KV-cache loop decodes exactly what transformers' generate does, eos included.
    assert (answer, chunks[-1].usage.completion_tokens) == transformers_greedy(smollm2_dir, question, 24)
    assert chunks[-1].finish_reason == "stop"
