"""The SEAL / ReST-EM outer loop: throw-away adapters leave the model as it was (to the bit), the filter
keeps winners without emptying an episode, and sleep() runs it end to end on the tiny random model,
saving a dream writer that the next night dreams with."""

import itertools
import json
import random

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer import budget, dreaming, seal
from trainer.config import SleepConfig
from trainer.dreaming import Dream
from trainer.text import words
from trainer.recipe import sleep

EPISODES = [
    {"id": "e1", "messages": [
        {"role": "user", "content": "Quick update: Mirpa Lovos's new parrot is named Lodun!"},
        {"role": "assistant", "content": "Got it, noted!"}]},
    {"id": "e2", "messages": [
        {"role": "user", "content": "Kaett Dunvos works as a ferry pilot at the harbour."},
        {"role": "assistant", "content": "That's lovely to hear."}]},
]
TARGETS = ["q_proj", "v_proj", "down_proj"]


def _config(**overrides):
    values = dict(steps=2, batch_size=4, dream_max_new_tokens=6, eval_max_new_tokens=6,
                  on_policy_max_new_tokens=6, question_max_new_tokens=6, model_questions=1,
                  answers_per_question=2, template_questions=3, entities_per_episode=1, imitation_every=2,
                  imitation_group=2, lmbda=0.5, alpha=0.2, expert_rank=4, max_lora_rank=8,
                  semantic_model="self", torch_threads=1, device="cpu", dtype="float32", seed=0,
                  seal_outer_loop=True, seal_steps=2, seal_writer_steps=2)
    values.update(overrides)
    return SleepConfig(**values)


def _dream(eid, n, **kw):
    return Dream(eid, f"What did I tell you about thing {n}?", f"Thing {n} is a parrot named Lodun.",
                 key_terms=["lodun", "parrot"], **kw)


# --- the filter (pure) ------------------------------------------------------------------------------


def test_deal_splits_each_episode_into_disjoint_non_empty_sets():
    dreams = [_dream("a", i) for i in range(5)] + [_dream("b", 9)]
    sets = seal.deal(dreams, 2, random.Random(0), round_=3)
    assert [(s.episode_id, len(s.dreams)) for s in sets] == [("a", 3), ("a", 2), ("b", 1)]
    dealt = [id(d) for s in sets for d in s.dreams]
    assert sorted(dealt) == sorted(id(d) for d in dreams) and all(s.round == 3 for s in sets)


def test_filter_keeps_winners_and_never_empties_an_episode():
    a1, a2, b1, b2, c1, d1, d2 = (_dream(e, i) for i, e in enumerate("aabbcdd"))
    sets = [
        seal.DreamSet(0, "a", [a1], reward=0.5),  # wins
        seal.DreamSet(0, "a", [a2], reward=0.0),  # loses, dropped: its episode has a winner
        seal.DreamSet(0, "b", [b1], reward=-0.5),  # no winner in b: the best-rewarded set stays
        seal.DreamSet(0, "b", [b2], reward=0.0),
        seal.DreamSet(0, "c", [c1], reward=None),  # no probes, no reward: passes unchanged
        seal.DreamSet(0, "d", [d1], reward=0.0),  # all tied: no evidence, all stay
        seal.DreamSet(0, "d", [d2], reward=0.0),
    ]
    dreams = [a1, a2, b1, b2, c1, d1, d2]
    kept, winners = seal.filter_winners(dreams, sets, min_reward=0.0)
    assert kept == [a1, b2, c1, d1, d2] and [id(d) for d in kept] == [id(d) for d in (a1, b2, c1, d1, d2)]
    assert [id(d) for d in winners] == [id(a1)]
    # a higher bar: a's winner loses too, and a falls back to its best set
    kept, winners = seal.filter_winners(dreams, sets, min_reward=0.5)
    assert winners == [] and [id(d) for d in kept] == [id(d) for d in (a1, b2, c1, d1, d2)]


def test_rounds_average_a_dreams_rewards():
    x, y = _dream("a", 1), _dream("a", 2)
    sets = [seal.DreamSet(0, "a", [x], reward=1.0), seal.DreamSet(0, "a", [y], reward=0.5),
            seal.DreamSet(1, "a", [x, y], reward=-1.0)]  # means: x 0.0, y -0.25
    kept, winners = seal.filter_winners([x, y], sets)
    assert winners == [] and [id(d) for d in kept] == [id(x)]


def test_seal_fields_are_range_checked():
    for change, words in [({"seal_steps": 0}, "seal_steps"), ({"seal_sets_per_episode": 0}, "seal_sets_per"),
                          ({"seal_min_reward": 1.0}, "seal_min_reward"),
                          ({"seal_writer_steps": -1}, "seal_writer")]:
        with pytest.raises(ValueError, match=words):
            SleepConfig(**change)


# --- throw-away adapters (tiny model) -----------------------------------------------------------------


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.clone()


def _state(model):
    active = list(model.base_model.active_adapters) if isinstance(model, PeftModel) else None
    return ([type(m).__name__ for m in model.modules()],
            [(n, p.requires_grad) for n, p in model.named_parameters()], model.training, active)


def _with_previous(model):
    """A PeftModel whose served stack `previous` is not zero (random B)."""
    config = LoraConfig(r=4, lora_alpha=4, target_modules=TARGETS, init_lora_weights=False)
    peft = get_peft_model(model, config, adapter_name="previous")
    for p in peft.parameters():
        p.requires_grad = False
    return peft.eval()


@pytest.mark.model
@pytest.mark.parametrize("stacked", [False, True], ids=["plain", "previous"])
def test_throwaway_adapter_leaves_the_model_bit_identical(tiny_model_dir, stacked):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    if stacked:
        model = _with_previous(model)
    ids = torch.tensor([[1, 42, 7, 99, 3, 15]])
    before, state = _logits(model, ids), _state(model)
    config = _config(target_modules=TARGETS, learning_rate=1e-2)
    with seal.throwaway(model, config, below=["previous"] if stacked else ()) as grown:
        params = [p for p in grown.parameters() if p.requires_grad]
        assert params and all(".expert." in n for n, p in grown.named_parameters() if p.requires_grad)
        optimizer = torch.optim.AdamW(params, lr=1e-2)
        for _ in range(3):
            loss = grown(input_ids=ids, labels=ids).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        assert not torch.equal(_logits(grown, ids), before)  # it did change the function while it lived
    assert torch.equal(_logits(model, ids), before)
    assert _state(model) == state
    if stacked:
        assert set(model.peft_config) == {"previous"}
    else:
        assert not any(isinstance(m, LoraLayer) for m in model.modules())
        assert not hasattr(model, "peft_config")


@pytest.mark.model
@pytest.mark.parametrize("stacked", [False, True], ids=["plain", "previous"])
def test_outer_loop_and_writer_leave_the_model_bit_identical(tiny_model_dir, stacked):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    if stacked:
        model = _with_previous(model)
    rounds = 1 if stacked else 2
    config = _config(target_modules=TARGETS, alpha=0.0, imitation_every=0, learning_rate=1e-2,
                     seal_rounds=rounds)
    trained = [_dream("e1", i) for i in range(3)] + [_dream("e2", i) for i in range(2)]
    probes = [_dream("e1", 7, held_out=True), _dream("e2", 8, held_out=True)]
    ids = torch.tensor([[1, 42, 7, 99, 3, 15]])
    before, state = _logits(model, ids), _state(model)
    layers = ["previous"] if stacked else []
    outcome = seal.outer_loop(model, tokenizer, trained, probes, EPISODES, config, teacher=layers or None,
                              frozen=layers, similarity=None)
    assert outcome.metrics["sets_scored"] == 4 * rounds == len(outcome.metrics["rewards"])  # 2 episodes x 2
    assert {d.episode_id for d in outcome.kept} == {"e1", "e2"}
    factors, metrics = seal.train_writer(model, tokenizer, trained, EPISODES, config)
    assert metrics["steps"] == 2 and any(b.abs().sum() > 0 for _, b in factors.values())  # the writer learned
    assert torch.equal(_logits(model, ids), before) and _state(model) == state


# --- sleep() end to end ---------------------------------------------------------------------------------


@pytest.fixture
def grounded(monkeypatch):
    """A random model's answers never restate the episode: count every dream as grounded, on a word
    only its own episode says (the first of them in order)."""
    monkeypatch.setattr(dreaming, "agreement",
                        lambda answer, episode, question: (0.5, [sorted(words(episode))[0]]))


@pytest.fixture
def scripted_recall(monkeypatch):
    """A random model never recalls: script recall as 0 before, then alternately 1 and 0 per set."""
    real = seal.probe_recall
    calls = itertools.count()

    def probe_recall(model, tokenizer, probes, config):
        real(model, tokenizer, probes, config)  # the real path runs; its value is replaced
        n = next(calls)
        return 0.0 if n < len(EPISODES) else float(n % 2 == 0)

    monkeypatch.setattr(seal, "probe_recall", probe_recall)


@pytest.mark.model
def test_sleep_with_the_outer_loop(tiny_model_dir, tmp_path, grounded, scripted_recall, monkeypatch):
    writers = []
    real_dream = budget.dream  # the recipe dreams through trainer.budget

    def spy(*args, **kwargs):
        writers.append(kwargs.get("writer"))
        return real_dream(*args, **kwargs)

    monkeypatch.setattr(budget, "dream", spy)
    config = _config()
    first = sleep(EPISODES, base_model=tiny_model_dir, adapter_dir=None, earlier_dreams=[], config=config,
                  out_dir=tmp_path / "n1", served_base="served-base", night="1")
    report = first.metrics["seal"]
    assert report["sets_scored"] == 4 and report["rewards"] == [1.0, 0.0, 1.0, 0.0]
    assert report["sets_won"] == 2 and [s["won"] for s in report["sets"]] == [True, False, True, False]
    assert report["dreams_kept"] == report["winners"] < report["dreams_before"]
    assert first.metrics["dreams"] == report["dreams_kept"] and first.metrics["train"]["steps"] == 2
    kept_training = [d for d in first.dreams if not d["held_out"]]
    assert len(kept_training) == report["dreams_kept"]
    assert {d["episode_id"] for d in kept_training} == {"e1", "e2"}  # every episode keeps dreams
    writer = first.adapter_dir / seal.WRITER_DIR
    assert report["writer"]["steps"] == 2 and report["writer"]["path"] == str(writer)
    writer_config = json.loads((writer / "adapter_config.json").read_text())
    assert writer_config["base_model_name_or_path"] == "served-base"
    assert json.loads((tmp_path / "n1" / "metrics.json").read_text())["seal"]["sets_won"] == 2
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), first.adapter_dir)

    second = sleep(EPISODES, base_model=tiny_model_dir, adapter_dir=first.adapter_dir,
                   earlier_dreams=first.dreams, config=config, out_dir=tmp_path / "n2", night="2")
    assert writers == [None, [seal.WRITER]]  # the second night dreamed with the first night's writer
    assert second.metrics["seal"]["sets_scored"] == 4 and (second.adapter_dir / seal.WRITER_DIR).is_dir()


@pytest.mark.model
def test_outer_loop_off_reports_none(tiny_model_dir, tmp_path, grounded):
    result = sleep(EPISODES, base_model=tiny_model_dir, adapter_dir=None, earlier_dreams=[],
                   config=_config(seal_outer_loop=False, steps=1, imitation_every=0), out_dir=tmp_path / "n1")
    assert result.metrics["seal"] is None and not (result.adapter_dir / seal.WRITER_DIR).exists()


@pytest.mark.model
def test_a_night_whose_sets_all_lose_trains_and_saves_no_writer(tiny_model_dir, tmp_path, grounded, monkeypatch):
    monkeypatch.setattr(seal, "probe_recall", lambda *args, **kwargs: 0.0)  # no set ever raises recall
    result = sleep(EPISODES, base_model=tiny_model_dir, adapter_dir=None, earlier_dreams=[], config=_config(),
                   out_dir=tmp_path / "n1")
    report = result.metrics["seal"]
    assert report["sets_won"] == 0 and report["writer"] == {"pairs": 0, "steps": 0, "path": None}
    assert result.metrics["train"]["steps"] > 0  # the night still trains every episode's dreams
    assert not (result.adapter_dir / seal.WRITER_DIR).exists()
