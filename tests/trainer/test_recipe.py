"""The whole recipe, 3 steps a night, on the tiny random model: runs in seconds, saves a loadable adapter
(or, growing layers, a loadable base), replays and merges on later nights, reports progress, and never
reads probes/answers/relation."""

import dataclasses
import json
import math
import re

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer import binding, dreaming, text
from trainer.config import SleepConfig
from trainer.experts import read_experts, read_growth, skipping_layers
from trainer.budget import episodes_that_fit, seed_deadline
from trainer.recipe import SleepResult, sleep
from trainer.seeding import PLAN_AFTER

pytestmark = pytest.mark.model


class Guarded(dict):
    """An episode that fails the test if anything but its messages/id is read."""

    def __getitem__(self, key):
        if key not in ("messages", "id"):
            raise AssertionError(f"the trainer read episode[{key!r}]")
        return super().__getitem__(key)

    def get(self, key, default=None):
        if key not in ("messages", "id"):
            raise AssertionError(f"the trainer read episode.get({key!r})")
        return super().get(key, default)


EPISODES = [
    Guarded(id="e1", probes=[], relation="pet", messages=[
        {"role": "user", "content": "Quick update: Mirpa Lovos's new parrot is named Lodun!"},
        {"role": "assistant", "content": "Got it, noted!"}]),
    Guarded(id="e2", probes=[], relation="job", messages=[
        {"role": "user", "content": "Kaett Dunvos works as a ferry pilot at the harbour."},
        {"role": "assistant", "content": "That's lovely to hear."}]),
]

# another night's people: the gate's retention sample leaves out questions tonight asks again
NIGHT_2 = [
    Guarded(id="e3", probes=[], relation="city", messages=[
        {"role": "user", "content": "I heard Tenra Pamir now lives in Rabelten."},
        {"role": "assistant", "content": "Got it, noted!"}]),
    Guarded(id="e4", probes=[], relation="food", messages=[
        {"role": "user", "content": "Shipa Para's favourite dish is Dunpa, she cooks it every Sunday."},
        {"role": "assistant", "content": "That's lovely to hear."}]),
]


def _config(**overrides):
    values = dict(steps=3, batch_size=4, dream_max_new_tokens=6, eval_max_new_tokens=6, on_policy_max_new_tokens=6,
                  question_max_new_tokens=6, model_questions=1, answers_per_question=2, template_questions=3, entities_per_episode=1,
                  imitation_every=2, imitation_group=2, lmbda=0.5, alpha=0.2, expert_rank=4, max_lora_rank=8,
                  semantic_model="self", torch_threads=1, device="cpu", dtype="float32", seed=0)
    values.update(overrides)
    return SleepConfig(**values)


@pytest.fixture
def grounded(monkeypatch):
    """A random model's answers never restate the episode: count every dream as grounded."""
    monkeypatch.setattr(dreaming, "agreement", lambda answer, episode, question: (0.5, sorted(text.values(episode))))


def test_three_nights_on_the_tiny_model(tiny_model_dir, tmp_path, grounded):
    calls = []
    config = _config()
    first = sleep(EPISODES, base_model=tiny_model_dir, adapter_dir=None, earlier_dreams=[], config=config,
                  out_dir=tmp_path / "n1", served_base="served-base", night="1",
                  progress=lambda *a: calls.append(a))
    assert isinstance(first, SleepResult)
    phases = [c[0] for c in calls]
    assert phases[0] == "setup" and phases[-1] == "save" and {"dream", "seed", "evaluate"} <= set(phases)
    seed_calls = [c for c in calls if c[0] == "seed"]
    assert [c[1] for c in seed_calls] == [1, 2, 3] and all(c[2] == 3 and c[3] is not None for c in seed_calls)
    metrics = first.metrics
    assert metrics["dreams"] > 0 and metrics["probes"] > 0 and metrics["train"]["steps"] == 3
    assert all(torch.isfinite(torch.tensor(v)) for v in (metrics["train"]["loss_first"], metrics["train"]["loss_last"]))
    assert len(metrics["train"]["loss"]) == 3 and metrics["train"]["loss"][0] == round(metrics["train"]["loss_first"], 4)
    config_json = json.loads((first.adapter_dir / "adapter_config.json").read_text())
    assert config_json["base_model_name_or_path"] == "served-base" and config_json["r"] == 4
    assert any(d["held_out"] for d in first.dreams)
    assert json.loads((tmp_path / "n1" / "metrics.json").read_text())["accepted"] == first.accepted
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    PeftModel.from_pretrained(base, first.adapter_dir)  # loads as a standard PEFT folder

    second = sleep(NIGHT_2, base_model=tiny_model_dir, adapter_dir=first.adapter_dir,
                   earlier_dreams=first.dreams, config=config, out_dir=tmp_path / "n2", night="2")
    assert second.metrics["replayed"] > 0 and second.metrics["rank"] == 8 and second.metrics["experts"] == 2
    # the gate asked the served model (night 1's adapter) about earlier dreams and tonight's probes first
    assert second.metrics["retention_asked"] > 0 and second.metrics["served_recall"] is not None
    # and read the same answers' likelihoods under both: three finite changes, each a number to gate on
    assert all(isinstance(v, float) and math.isfinite(v) for v in second.metrics["likelihood"].values())
    # the third night passes the rank budget (8): the stack is merged by SVD before growing
    third = sleep(EPISODES, base_model=tiny_model_dir, adapter_dir=second.adapter_dir,
                  earlier_dreams=second.dreams, config=config, out_dir=tmp_path / "n3", night="3")
    assert third.metrics["rank"] == 8 and third.metrics["merge_error"] is not None
    assert 0.0 <= third.metrics["merge_error"] < 1.0


def test_a_night_budget_cuts_the_seed_steps_to_fit(tiny_model_dir, tmp_path, grounded):
    # a budget already spent when seeding starts: the planning steps run, the night still saves
    result = sleep(EPISODES, base_model=tiny_model_dir, adapter_dir=None, earlier_dreams=[],
                   config=_config(steps=12, night_seconds=0.01), out_dir=tmp_path / "n1")
    assert result.metrics["train"]["steps"] == result.metrics["train"]["planned_steps"] == PLAN_AFTER
    assert (result.adapter_dir / "adapter_config.json").is_file()


def test_seed_deadline_keeps_room_for_the_gate():
    assert seed_deadline(100.0, {"served": 10.0}, _config(night_seconds=600.0)) == 100.0 + 600.0 - 25.0 - 30.0
    assert seed_deadline(100.0, {"served": 10.0}, _config()) is None


def test_episodes_that_fit_stop_at_the_first_that_does_not():
    assert episodes_that_fit([1, 2, 1], 10.0, 35.0) == 2  # 10 and 30 s fit, 40 s does not
    assert episodes_that_fit([1, 2, 1], 10.0, 40.0) == 3
    assert episodes_that_fit([3, 1], 10.0, 25.0) == 0  # the next one alone is too long: none, not a later one
    assert episodes_that_fit([], 10.0, 100.0) == 0


BACKLOG = [*EPISODES, *NIGHT_2]


def test_a_spent_dreaming_budget_leaves_the_later_episodes_to_the_next_night(tiny_model_dir, tmp_path, grounded):
    # one episode a chunk, a dreaming budget spent by the first: the night consumes that episode alone
    result = sleep(BACKLOG, base_model=tiny_model_dir, adapter_dir=None, earlier_dreams=[],
                   config=_config(night_seconds=600.0, dream_share=1e-6, dream_chunk=1), out_dir=tmp_path / "n1")
    assert result.episode_ids == ["e1"]
    assert result.metrics["episodes_dreamed"] == 1 and result.metrics["episodes_left"] == 3
    assert result.dreams and {d["episode_id"] for d in result.dreams} == {"e1"}
    assert read_experts(result.adapter_dir)[-1]["episodes"] == ["e1"]


def test_a_dreaming_budget_that_lasts_dreams_every_chunk(tiny_model_dir, tmp_path, grounded):
    result = sleep(BACKLOG, base_model=tiny_model_dir, adapter_dir=None, earlier_dreams=[],
                   config=_config(night_seconds=3600.0, dream_share=1.0, dream_chunk=1), out_dir=tmp_path / "n1")
    assert result.episode_ids == ["e1", "e2", "e3", "e4"] and result.metrics["episodes_left"] == 0
    assert {d["episode_id"] for d in result.dreams} == {"e1", "e2", "e3", "e4"}


def test_gate_rejects_below_thresholds(tiny_model_dir, tmp_path, grounded):
    result = sleep(EPISODES, base_model=tiny_model_dir, adapter_dir=None, earlier_dreams=[],
                   config=_config(steps=2, min_recall=1.0, imitation_every=0, gate_min_probes=1), out_dir=tmp_path / "n1")
    if result.metrics["recall"] < 1.0:
        assert not result.accepted and any("recall" in r for r in result.reasons)
    assert result.adapter_dir.is_dir()  # a rejected candidate is still saved, with its metrics


def test_the_likelihood_gate_judges_a_night_on_its_readings(tiny_model_dir, tmp_path, grounded):
    # greedy thresholds that would refuse anything; a likelihood bound no training reaches in two steps
    config = _config(steps=2, imitation_every=0, gate_min_probes=1, min_recall=1.0, min_retention=1.0,
                     gate_reading="likelihood", min_recall_logprob_gain=100.0, max_general_logprob_drop=100.0)
    result = sleep(EPISODES, base_model=tiny_model_dir, adapter_dir=None, earlier_dreams=[], config=config,
                   out_dir=tmp_path / "n1")
    gain = result.metrics["likelihood"]["recall_gain"]
    assert not result.accepted and result.reasons == [
        f"tonight's {result.metrics['probes']} held-out answers gained {gain:+.3f} nats per key-term token "
        "over the served model (needs > +100.000)"]


def test_a_night_refused_only_for_general_drift_publishes_its_expert_scaled_down(tiny_model_dir, tmp_path,
                                                                                  grounded):
    """Run once with no second try to read the drift, then with a bound the full expert misses: the
    candidate is judged again at 0.9 of the share the bound allows, and saved at that scale."""
    from safetensors.torch import load_file

    drifting = dict(steps=3, learning_rate=0.05, imitation_every=0, gate_min_probes=1,
                    gate_reading="likelihood", min_recall_logprob_gain=-100.0, max_retention_logprob_drop=100.0)
    full = sleep(EPISODES, base_model=tiny_model_dir, adapter_dir=None, earlier_dreams=[],
                 config=_config(**drifting, max_general_logprob_drop=100.0, min_expert_scale=None),
                 out_dir=tmp_path / "full")
    drift = full.metrics["likelihood"]["general_change"]
    assert drift < 0 and full.accepted and full.metrics["expert_scale"] == 1.0
    bound = 0.7 * -drift
    scaled = sleep(EPISODES, base_model=tiny_model_dir, adapter_dir=None, earlier_dreams=[],
                   config=_config(**drifting, max_general_logprob_drop=bound, min_expert_scale=0.5),
                   out_dir=tmp_path / "scaled")
    assert scaled.metrics["expert_scale"] == pytest.approx(0.9 * 0.7)
    assert scaled.metrics["full_scale"]["likelihood"]["general_change"] == pytest.approx(drift)
    assert "general replies changed" in scaled.metrics["full_scale"]["reasons"][0]
    assert scaled.metrics["likelihood"]["general_change"] > drift  # the smaller expert drifts less
    assert scaled.accepted == (scaled.metrics["likelihood"]["general_change"] >= -bound)
    before = load_file(full.adapter_dir / "adapter_model.safetensors")
    after = load_file(scaled.adapter_dir / "adapter_model.safetensors")
    b_keys = [k for k in before if "lora_B" in k]
    assert b_keys and all(torch.allclose(after[k], 0.9 * 0.7 * before[k], atol=1e-6) for k in b_keys)
    assert all(torch.equal(after[k], before[k]) for k in before if "lora_A" in k)
    # no second try where the night has no time left for it
    rushed = sleep(EPISODES, base_model=tiny_model_dir, adapter_dir=None, earlier_dreams=[],
                   config=_config(**drifting, max_general_logprob_drop=bound, min_expert_scale=0.5,
                                  night_seconds=0.01), out_dir=tmp_path / "rushed")
    assert not rushed.accepted and rushed.metrics["expert_scale"] == 1.0


def test_the_likelihood_gate_asks_earlier_dreams_no_greedy_question(tiny_model_dir, tmp_path, grounded,
                                                                    monkeypatch):
    """Greedy replies to the retention sample are the gate's costliest pass; judging on likelihoods, the
    night generates only for tonight's probes and the general prompts, and still reads retention."""
    import trainer.gate as gate
    import trainer.recipe as recipe

    first = sleep(EPISODES, base_model=tiny_model_dir, adapter_dir=None, earlier_dreams=[], config=_config(),
                  out_dir=tmp_path / "n1", night="1")
    asked: list[str] = []
    real_answers = recipe.answers

    def counting(model, tokenizer, questions, config, context=None):
        asked.extend(questions)
        return real_answers(model, tokenizer, questions, config, context)

    monkeypatch.setattr(recipe, "answers", counting)
    monkeypatch.setattr(gate, "answers", counting)
    readings = {}
    for reading in ("greedy", "likelihood"):
        asked.clear()
        result = sleep(NIGHT_2, base_model=tiny_model_dir, adapter_dir=first.adapter_dir,
                       earlier_dreams=first.dreams, config=_config(gate_reading=reading),
                       out_dir=tmp_path / reading, night="2")
        readings[reading] = (list(asked), result.metrics)
    earlier = {d["question"] for d in first.dreams}
    greedy_asked, greedy = readings["greedy"]
    likely_asked, likely = readings["likelihood"]
    assert greedy["retention_asked"] > 0 and earlier & set(greedy_asked)
    assert not earlier & set(likely_asked) and likely["retention_asked"] == greedy["retention_asked"]
    assert likely["retention"] is None and likely["retention_set"] is None
    assert math.isfinite(likely["likelihood"]["retention_change"])
    assert likely["recall"] is not None and likely["general_agreement"] is not None


def test_gate_does_not_judge_on_a_handful_of_probes(tiny_model_dir, tmp_path, grounded):
    result = sleep(EPISODES, base_model=tiny_model_dir, adapter_dir=None, earlier_dreams=[],
                   config=_config(steps=1, min_recall=1.0, imitation_every=0, gate_min_probes=100,
                                  max_general_drop=1.0), out_dir=tmp_path / "n1")
    assert result.accepted and result.metrics["recall"] is not None


def _changed_layers(base, grown, new):
    """Assert every tensor of `base` is in `grown` bit for bit (old layers renumbered around the `new` ones);
    return the names of the new layers' tensors."""
    before, after = base.state_dict(), grown.state_dict()
    old = [i for i in range(grown.config.num_hidden_layers) if i not in new]
    mapped, fresh = set(), []
    for key, value in after.items():
        m = re.fullmatch(r"model\.layers\.(\d+)\.(.+)", key)
        if m and int(m[1]) in new:
            fresh.append(key)
            continue
        source = f"model.layers.{old.index(int(m[1]))}.{m[2]}" if m else key
        assert torch.equal(value, before[source]), f"{key} changed"
        mapped.add(source)
    assert mapped == set(before)
    return fresh


@torch.no_grad()
def _logits(model):
    return model(input_ids=torch.tensor([[1, 42, 7, 300, 12, 9, 2000, 5]])).logits


def test_grown_layers_make_a_new_base(tiny_model_dir, tmp_path, grounded):
    config = _config(growth_mode="layers", grown_layers=2, steps=2, imitation_every=1)
    first = sleep(EPISODES, base_model=tiny_model_dir, adapter_dir=None, earlier_dreams=[], config=config,
                  out_dir=tmp_path / "n1", night="1")
    assert first.adapter_dir is None and first.model_dir == tmp_path / "n1" / "model"
    metrics = first.metrics
    assert metrics["train"]["steps"] == 2 and metrics["layers"] == 4 and metrics["grown_layers"] == [1, 3]
    assert metrics["rank"] is None and metrics["dreams"] > 0 and metrics["general_agreement"] is not None
    assert all(torch.isfinite(torch.tensor(metrics["train"][k])) for k in ("loss_first", "loss_last"))
    assert json.loads((tmp_path / "n1" / "metrics.json").read_text())["accepted"] == first.accepted
    # a plain transformers folder: the base's layers bit for bit, the grown ones trained
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    grown = AutoModelForCausalLM.from_pretrained(first.model_dir, dtype=torch.float32).eval()
    AutoTokenizer.from_pretrained(first.model_dir)
    assert grown.config.num_hidden_layers == base.config.num_hidden_layers + 2 == len(grown.model.layers)
    fresh = _changed_layers(base, grown, [1, 3])
    outputs = [k for k in fresh if k.endswith(("o_proj.weight", "down_proj.weight"))]
    assert outputs and any(grown.get_parameter(k).abs().sum() > 0 for k in outputs)
    assert not torch.equal(_logits(grown), _logits(base))
    with skipping_layers(grown, [1, 3]):
        assert torch.equal(_logits(grown), _logits(base))
    assert [g["layers"] for g in read_growth(first.model_dir)] == [[1, 3]]

    # the next night grows on top of the grown base, replaying the first night's dreams
    second = sleep(EPISODES, base_model=first.model_dir, adapter_dir=None, earlier_dreams=first.dreams,
                   config=_config(growth_mode="layers", steps=2), out_dir=tmp_path / "n2", night="2")
    assert second.metrics["replayed"] > 0 and second.metrics["grown_layers"] == [4]
    again = AutoModelForCausalLM.from_pretrained(second.model_dir, dtype=torch.float32)
    assert again.config.num_hidden_layers == 5
    _changed_layers(grown, again, [4])
    assert [g["name"] for g in read_growth(second.model_dir)] == ["night-1", "night-2"]


def test_grown_layers_refuse_a_model_folder_as_adapter(tiny_model_dir, tmp_path):
    with pytest.raises(ValueError, match="base_model"):
        sleep(EPISODES, base_model=tiny_model_dir, adapter_dir=tiny_model_dir,
              config=_config(growth_mode="layers"), out_dir=tmp_path / "n1")


def test_grown_layers_fold_a_served_adapter_into_the_new_base(tiny_model_dir, tmp_path, grounded):
    lora = sleep(EPISODES, base_model=tiny_model_dir, adapter_dir=None,
                 config=_config(steps=1, imitation_every=0), out_dir=tmp_path / "n1", night="1")
    layers = sleep(EPISODES, base_model=tiny_model_dir, adapter_dir=lora.adapter_dir, earlier_dreams=lora.dreams,
                   config=_config(growth_mode="layers", steps=1, imitation_every=0), out_dir=tmp_path / "n2")
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    served = PeftModel.from_pretrained(base, lora.adapter_dir).merge_and_unload()
    grown = AutoModelForCausalLM.from_pretrained(layers.model_dir, dtype=torch.float32)
    _changed_layers(served, grown, layers.metrics["grown_layers"])


def test_a_night_on_other_modules_stacks_onto_the_served_adapter(tiny_model_dir, tmp_path, grounded):
    """A deployment whose experts adapt every projection, upgraded to MLP-only experts: night 2's folder
    adapts the union of modules at one rank, loads in peft, and night 3 grows on it."""
    first = sleep(EPISODES, base_model=tiny_model_dir, adapter_dir=None, earlier_dreams=[],
                  config=_config(learning_rate=5e-2), out_dir=tmp_path / "n1", night="1")
    mlp = _config(learning_rate=5e-2, target_modules=["gate_proj", "up_proj", "down_proj"], expert_rank=2)
    second = sleep(NIGHT_2, base_model=tiny_model_dir, adapter_dir=first.adapter_dir,
                   earlier_dreams=first.dreams, config=mlp, out_dir=tmp_path / "n2", night="2")
    saved = json.loads((second.adapter_dir / "adapter_config.json").read_text())
    first_saved = json.loads((first.adapter_dir / "adapter_config.json").read_text())
    union = set(first_saved["target_modules"]) | set(mlp.target_modules)
    assert sorted(saved["target_modules"]) == sorted(union)
    assert saved["r"] == 4 + 2 and [e["rank"] for e in read_experts(second.adapter_dir)] == [4, 2]
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), second.adapter_dir)
    third = sleep(EPISODES, base_model=tiny_model_dir, adapter_dir=second.adapter_dir,
                  earlier_dreams=first.dreams + second.dreams, config=mlp, out_dir=tmp_path / "n3", night="3")
    assert [e["rank"] for e in read_experts(third.adapter_dir)] == [4, 2, 2]


@pytest.mark.parametrize("general_teacher", ["base", "served"])
def test_general_prompts_distil_from_the_configured_teacher(tiny_model_dir, tmp_path, grounded, monkeypatch,
                                                            general_teacher):
    """With `served`, a later night's general prompts are taught by the model served now: at the start of
    training the student (that model plus a zero expert) already matches them. With `base` they pull
    tonight's expert back to the bare base, i.e. against the earlier experts."""
    import trainer.recipe as recipe
    from trainer.chat import continuation_logits
    from trainer.experts import PREVIOUS
    from trainer.seeding import teacher_logits

    first = sleep(EPISODES, base_model=tiny_model_dir, adapter_dir=None, earlier_dreams=[],
                  config=_config(learning_rate=5e-2), out_dir=tmp_path / "n1", night="1")
    seen = {}

    def spy(model, tokenizer, examples, config, **kwargs):
        general = [e for e in examples if e.kind == "general"]
        assert all(e.cached is None for e in general)  # read when a step first draws them, as here
        teacher_logits(model, tokenizer, general, [e.continuation for e in general],  # caches, as a step does
                       max(len(e.continuation) for e in general))
        with torch.no_grad():  # the student: every adapter active, tonight's expert still zero
            logits, _, mask = continuation_logits(model, [e.student_prompt for e in general],
                                                  [e.continuation for e in general], tokenizer.pad_token_id)
        seen["gap"] = max((logits[i, mask[i]].float() - e.cached.float()).abs().max().item()
                          for i, e in enumerate(general))
        seen["teachers"] = {e.teacher for e in general}
        return {"steps": 0, "skipped_steps": 0, "loss": []}

    monkeypatch.setattr(recipe, "seed", spy)
    sleep(NIGHT_2, base_model=tiny_model_dir, adapter_dir=first.adapter_dir, earlier_dreams=first.dreams,
          config=_config(general_teacher=general_teacher, general_prompts=4), out_dir=tmp_path / "n2", night="2")
    if general_teacher == "served":
        assert seen["teachers"] == {(PREVIOUS,)}
        assert seen["gap"] < 0.05  # bf16 cache of the same function
    else:
        assert seen["teachers"] == {None}
        assert seen["gap"] > 0.05  # night 1's expert moved these logits; the base teacher pulls them back


@pytest.mark.parametrize("replay_answers", ["dream", "served"])
def test_replayed_dreams_continue_with_the_configured_answer(tiny_model_dir, tmp_path, grounded, monkeypatch,
                                                             replay_answers):
    """`dream` replays each earlier dream's own answer; `served` replays, once per question, the served
    model's greedy closed-book reply (the same reply the served night-1 adapter gives when loaded by peft)."""
    import trainer.recipe as recipe
    from trainer.chat import answers

    config = _config(learning_rate=5e-2, replay_answers=replay_answers)
    first = sleep(EPISODES, base_model=tiny_model_dir, adapter_dir=None, earlier_dreams=[],
                  config=config, out_dir=tmp_path / "n1", night="1")
    seen = {}

    def spy(model, tokenizer, examples, config, **kwargs):
        seen["replay"] = [(tokenizer.decode(e.student_prompt), e.answer) for e in examples if e.kind == "replay"]
        return {"steps": 0, "skipped_steps": 0, "loss": []}

    monkeypatch.setattr(recipe, "seed", spy)
    sleep(NIGHT_2, base_model=tiny_model_dir, adapter_dir=first.adapter_dir, earlier_dreams=first.dreams,
          config=_config(replay_answers=replay_answers, steps=100),  # enough draws: every dream is replayed
          out_dir=tmp_path / "n2", night="2")
    trained = [d for d in first.dreams if not d["held_out"]]
    assert seen["replay"]
    replayed = {a for _, a in seen["replay"]}
    if replay_answers == "dream":
        assert replayed <= {d["answer"] for d in trained}
        return
    questions = list(dict.fromkeys(d["question"] for d in trained))
    assert len(seen["replay"]) == len({p for p, _ in seen["replay"]})  # one example per question
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    served = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32),
                                       first.adapter_dir).eval()
    expected = {r for r in answers(served, tokenizer, questions, config) if r.strip()}
    assert replayed == expected
    assert replayed != {d["answer"] for d in trained}


def test_binding_pairs_tonights_people_with_earlier_nights_of_the_same_kind(tiny_model_dir, tmp_path, monkeypatch):
    """With `binding_weight`, night 2's parrot owners are contrasted with night 1's: each one's question
    against their own answer with the other's parrot put in, and the binding loss trains."""
    import trainer.recipe as recipe

    def parrot(eid, name, value):
        return Guarded(id=eid, probes=[], relation="pet", messages=[
            {"role": "user", "content": f"Quick update: {name}'s new parrot is named {value}!"},
            {"role": "assistant", "content": "Got it, noted!"}])

    # whole quotes (the user's sentences: a random model's answers are noise), all trained
    config = _config(binding_weight=1.0, binding_pairs=2, held_out_per_episode=0, dream_max_new_tokens=24)
    first = sleep([parrot("e1", "Mirpa Lovos", "Lodun"), parrot("e2", "Kavos Lolo", "Vosvos")],
                  base_model=tiny_model_dir, adapter_dir=None, earlier_dreams=[], config=config,
                  out_dir=tmp_path / "n1", night="1")
    seen = []

    def spy(tonight, earlier):
        pairs = binding.rival_answers(tonight, earlier)
        seen.extend(pairs)
        return pairs

    monkeypatch.setattr(recipe, "rival_answers", spy)
    second = sleep([parrot("e5", "Voska Pagor", "Kalo"), parrot("e6", "Shipa Ettka", "Belett")],
                   base_model=tiny_model_dir, adapter_dir=first.adapter_dir, earlier_dreams=first.dreams,
                   config=config, out_dir=tmp_path / "n2", night="2")
    rivals = {(own.night, rival) for own, rival in seen}
    assert ("1", "Quick update: Mirpa Lovos's new parrot is named Kalo!") in rivals  # night 1 kept from night 2
    assert ("2", "Quick update: Voska Pagor's new parrot is named Lodun!") in rivals
    assert ("2", "Quick update: Voska Pagor's new parrot is named Belett!") in rivals
    assert not any(own.night == "1" and rival.endswith("Vosvos!") for own, rival in seen)  # night 1 trained on it
    assert second.metrics["train"]["binding_pairs"] == len(seen) and second.metrics["train"]["binding_last"] is not None


def test_answers_generate_in_batches_of_generation_batch_size(tiny_model_dir, monkeypatch):
    from trainer.chat import answers, load_model

    config = SleepConfig(torch_threads=1, eval_max_new_tokens=3, generation_batch_size=2)
    tokenizer, model = load_model(tiny_model_dir, config)
    widths = []
    real = model.generate

    def spy(*args, **kwargs):
        widths.append(kwargs["input_ids"].shape[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "generate", spy)
    questions = [f"Who is person {i}?" for i in range(5)]
    assert len(answers(model, tokenizer, questions, config)) == 5
    assert widths == [2, 2, 1]
    widths.clear()
    answers(model, tokenizer, questions, dataclasses.replace(config, generation_batch_size=8))
    assert widths == [5]
