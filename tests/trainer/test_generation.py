"""Where a night's text comes from (`trainer.generation`): the local generation is `chat.generate` group
by group, a server's continuation is cut as `chat.generate` cuts, the student saved for a server is the
training model to float error, and seeding tells the generation of every step."""

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainer.chat import generate, render
from trainer.config import SleepConfig
from trainer.experts import EXPERT, PREVIOUS, grow_expert
from trainer.generation import LOCAL, LocalGeneration, cut_after_end_of_turn, save_student
from trainer.seeding import build_example, seed
from trainer.semantic import load_similarity


def test_a_servers_continuation_is_cut_after_the_end_of_turn_token():
    assert cut_after_end_of_turn([5, 6, 2, 7], 2, stopped=True) == [5, 6, 2]
    assert cut_after_end_of_turn([5, 6, 2], 2, stopped=True) == [5, 6, 2]
    assert cut_after_end_of_turn([5, 6], 2, stopped=True) == [5, 6, 2]  # a server that leaves the stop token out
    assert cut_after_end_of_turn([5, 6], 2, stopped=False) == [5, 6]  # cut by max_new_tokens, as chat.generate
    assert cut_after_end_of_turn([], 2, stopped=True) == [2]


def _tiny(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return tokenizer, model


@pytest.mark.model
def test_the_local_teacher_is_chat_generate_one_group_at_a_time(tiny_model_dir):
    tokenizer, model = _tiny(tiny_model_dir)
    ask = lambda q: render(tokenizer, [{"role": "user", "content": q}])  # noqa: E731
    groups = [[ask("Who is Tenra?"), ask("Where is Rabelten?")], [ask("Name a colour.")]]
    for temperature in (0.0, 1.0):
        got = LOCAL.teacher(model, tokenizer, groups, seeds=[3, 4], max_new_tokens=6, temperature=temperature)
        want = [generate(model, tokenizer, g, max_new_tokens=6, temperature=temperature, generator_seed=s)
                for g, s in zip(groups, [3, 4])]
        assert got == want


@pytest.mark.model
@torch.no_grad()
def test_the_saved_student_is_the_training_model(tiny_model_dir, tmp_path):
    """A served stack under tonight's expert, both with nonzero B: the saved folder, loaded on a fresh
    base by peft, gives the training model's logits."""
    _, model = _tiny(tiny_model_dir)
    model = grow_expert(model, rank=4, alpha=8.0, target_modules=["q_proj", "v_proj"], name=PREVIOUS, seed=1)
    model = grow_expert(model, rank=2, alpha=4.0, target_modules=["q_proj", "v_proj"],
                        frozen=[PREVIOUS], seed=2)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.normal_(0, 0.05)
    ids = torch.tensor([[1, 42, 7, 300, 12, 9, 2000, 5]])
    want = model(input_ids=ids).logits
    folder = save_student(model, tmp_path / "student", base_model_name_or_path=str(tiny_model_dir))
    _, fresh = _tiny(tiny_model_dir)
    got = PeftModel.from_pretrained(fresh, str(folder)).eval()(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-5)
    assert list(model.base_model.active_adapters) == [PREVIOUS, EXPERT]  # saving changed nothing


class Recording(LocalGeneration):
    """The local generation, keeping what seeding asked of it."""

    def __init__(self):
        self.student_prompts, self.steps = [], 0

    def student(self, model, tokenizer, prompts, **kwargs):
        self.student_prompts.append(len(prompts))
        return super().student(model, tokenizer, prompts, **kwargs)

    def stepped(self, model):
        self.steps += 1


@pytest.mark.model
def test_seeding_samples_the_student_from_its_generation_and_reports_every_step(tiny_model_dir):
    tokenizer, model = _tiny(tiny_model_dir)
    model = grow_expert(model, rank=4, alpha=8.0, target_modules=["q_proj", "v_proj"])
    config = SleepConfig(steps=4, batch_size=2, lmbda=1.0, alpha=0.5, imitation_every=2, imitation_group=2,
                         on_policy_max_new_tokens=4, replay_fraction=0.0, general_fraction=0.0, torch_threads=1,
                         semantic_model="self")
    ask = lambda q: render(tokenizer, [{"role": "user", "content": q}])  # noqa: E731
    examples = [build_example(tokenizer, ask(f"Who is Tenra {i}?"), ask(f"Who is Tenra {i}?"),
                              f"Tenra {i} lives in Rabelten.", None, "tonight") for i in range(2)]
    recording = Recording()
    metrics = seed(model, tokenizer, examples, config, similarity=load_similarity("self", model, tokenizer),
                   generation=recording)
    assert recording.steps == metrics["steps"] == 4
    # every step samples its whole batch (lmbda 1), and steps 0 and 2 an imitation group of 2
    assert recording.student_prompts == [2, 2, 2, 2, 2, 2]
