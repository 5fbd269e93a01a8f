"""The trainer reads an episode's `id` and `messages` and nothing else: never the fields that describe the
test (`probes`, `answers`, `category`, `relation`, `supersedes`, `superseded_by`, `reject`).

Two guards: a tiny-model sleep of two nights (the second with a correction of the first, every optional
question kind on) on episodes that record every key read, however it is read; and a static check that no
trainer module but the benchmark's reads one of those keys (`x["probes"]`, `x.get("category")`,
`"reject" in x`, `getattr(x, "relation")`)."""

import ast
from pathlib import Path

import pytest

from trainer import dreaming, text
from trainer.config import SleepConfig
from trainer.recipe import sleep

ALLOWED = {"id", "messages"}
TEST_FIELDS = ("probes", "answers", "category", "relation", "supersedes", "superseded_by", "reject")
TRAINER = Path(__file__).resolve().parents[2] / "trainer"


class Recording(dict):
    """An episode that records every key read: by index, get, membership, or any iteration over it."""

    def __init__(self, reads: list, **fields):
        super().__init__(**fields)
        self.reads = reads

    def __getitem__(self, key):
        self.reads.append(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.reads.append(key)
        return super().get(key, default)

    def __contains__(self, key):
        self.reads.append(key)
        return super().__contains__(key)

    def pop(self, key, *default):
        self.reads.append(key)
        return super().pop(key, *default)

    def setdefault(self, key, default=None):
        self.reads.append(key)
        return super().setdefault(key, default)

    def _all(self, how):
        self.reads.extend(f"{k} ({how})" for k in super().keys())

    def __iter__(self):
        self._all("iter")
        return super().__iter__()

    def keys(self):
        self._all("keys")
        return super().keys()

    def items(self):
        self._all("items")
        return super().items()

    def values(self):
        self._all("values")
        return super().values()

    def copy(self):
        self._all("copy")
        return super().copy()

    def __reduce_ex__(self, protocol):  # copy / deepcopy / pickle
        self._all("copy")
        return super().__reduce_ex__(protocol)


def _episodes(reads: list, night: int) -> list[Recording]:
    told = {1: ("By the way, my dog is called Dunshi.", "Mirpa Lovos works at a bakery called Gorbel."),
            2: ("Can you suggest a name for my kitten?",
                "Update: Mirpa Lovos left Gorbel, she works at Lobel now.")}[night]
    extra = dict(probes=[{"question": "What is my dog called?", "answers": ["Dunshi"], "reject": ["Gorbel"]}],
                 answers=["Dunshi"], category="update", relation="pet", reject=["Gorbel"])
    return [
        Recording(reads, id=f"n{night}-a", supersedes="n1-b", **extra, messages=[
            {"role": "user", "content": "The weather was grey all week."},
            {"role": "assistant", "content": "Sorry to hear that."},
            {"role": "user", "content": told[0]},
            {"role": "assistant", "content": "How about Tobrin?" if night == 2 else "Good to know."}]),
        Recording(reads, id=f"n{night}-b", superseded_by="n2-b", **extra, messages=[
            {"role": "user", "content": told[1]}, {"role": "assistant", "content": "Got it, noted!"}]),
    ]


def _config(**overrides):
    values = dict(steps=2, batch_size=2, dream_max_new_tokens=6, eval_max_new_tokens=6, on_policy_max_new_tokens=6,
                  question_max_new_tokens=6, model_questions=1, answers_per_question=2, template_questions=2,
                  entities_per_episode=1, handle_questions=1, statement_questions=True, recheck_questions=1,
                  imitation_every=0, expert_rank=4, max_lora_rank=8, semantic_model="self", torch_threads=1,
                  device="cpu", dtype="float32", seed=0, gate_reading="open")
    values.update(overrides)
    return SleepConfig(**values)


@pytest.mark.model
def test_a_sleep_reads_only_the_id_and_messages_of_an_episode(tiny_model_dir, tmp_path, monkeypatch):
    # a random model's answers never restate the episode: count every dream as grounded, so all paths run
    monkeypatch.setattr(dreaming, "agreement", lambda answer, episode, question: (0.5, sorted(text.values(episode))))
    reads: list = []
    config = _config()
    first = sleep(_episodes(reads, 1), base_model=tiny_model_dir, adapter_dir=None, earlier_dreams=[],
                  config=config, out_dir=tmp_path / "n1", night="1")
    second = sleep(_episodes(reads, 2), base_model=tiny_model_dir, adapter_dir=first.adapter_dir,
                   earlier_dreams=first.dreams, config=config, out_dir=tmp_path / "n2", night="2")
    assert second.metrics["dreams"] > 0 and {"id", "messages"} <= set(reads)
    assert set(reads) <= ALLOWED, f"the trainer read {sorted(set(reads) - ALLOWED)} of an episode"


def _reads_of_test_fields(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, field) for each read of a test field: a subscript load, .get/.pop/.setdefault/getattr/hasattr
    with it, or a membership test. Writing one (a metrics dict's own "probes" count) is not a read."""
    found = []

    def named(node) -> str | None:
        return node.value if isinstance(node, ast.Constant) and node.value in TEST_FIELDS else None

    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and named(node.slice):
            found.append((node.lineno, named(node.slice)))
        elif isinstance(node, ast.Call) and node.args and named(node.args[0]):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in ("get", "pop", "setdefault"):
                found.append((node.lineno, named(node.args[0])))
        elif isinstance(node, ast.Call) and len(node.args) > 1 and named(node.args[1]):
            if isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr"):
                found.append((node.lineno, named(node.args[1])))
        elif isinstance(node, ast.Compare) and named(node.left):
            if any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
                found.append((node.lineno, named(node.left)))
    return found


def test_no_trainer_module_but_the_benchmark_reads_a_test_field():
    modules = [p for p in sorted(TRAINER.glob("*.py")) if not p.name.startswith("benchmark")]
    assert len(modules) > 5
    found = {p.name: _reads_of_test_fields(ast.parse(p.read_text())) for p in modules}
    assert {name: reads for name, reads in found.items() if reads} == {}


def test_the_static_check_finds_each_way_of_reading():
    code = ('a = e["probes"]\nb = e.get("category")\nc = "reject" in e\nd = getattr(e, "relation")\n'
            'm = {"probes": 3}\nm["supersedes"] = 1\nf = e.pop("superseded_by")\n')
    assert _reads_of_test_fields(ast.parse(code)) == [(1, "probes"), (2, "category"), (3, "reject"), (4, "relation"),
                                                      (7, "superseded_by")]
