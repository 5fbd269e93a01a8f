"""`reverie eval`: the knowledge-incorporation benchmark of shared/eval/README.md, end to end.

    reverie eval --dataset ../shared/eval/memory-public.jsonl --general ../shared/eval/general-public.jsonl \
        --nights 3 --out runs/eval --config cpu-default

For each night n the episodes of night n are consolidated by `trainer.sleep` (the served adapter
advances only when the gate accepts, as in production); probes are then asked closed-book. Baselines
on the same data: no sleep, and naive LoRA fine-tuning on the raw transcripts with the same step
budget. Writes DIR/results.json, DIR/report.md, DIR/replies.jsonl (every reply, scored) and PNG plots.

Format v1 and v2 files run alike; how v2's categories, `reject` and `superseded_by` are scored, and the
keys they add (`by_category`, `stale`), is in trainer/benchmark_scoring.py. Only the benchmark modules
read `probes`, `answers`, `category`, `relation`, `reject`, `supersedes`, `superseded_by`: `sleep` gets
`{"id", "messages"}` per episode and nothing else.

Progress goes to stderr: while a phase runs, a tqdm bar on a terminal; when it ends, on a terminal or
not, one flushed line with its wall time (`night 2 | sleep | dream 2/2 done in 131 s`), so a run logged
to a file shows where it is.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from trainer.benchmark_report import Phases, plot, report
from trainer.benchmark_scoring import (
    Mark,
    Probe,
    by_category,
    categories,
    correct,
    load_jsonl,
    load_probes,
    no_sleep_marks,
    share,
    summarise,
)
from trainer.chat import answers, load_model
from trainer.config import SleepConfig
from trainer.episodes import episode_messages
from trainer.experts import EXPERT, PREVIOUS, adapter_factors, concatenate, grow_expert, read_experts, save_adapter
from trainer.recipe import sleep


# --- asking ------------------------------------------------------------------------------------------

def ask(model, tokenizer, probes: Sequence[Probe], ids: Sequence[int], config: SleepConfig, phases: Phases,
        name: str, in_context: bool = False, log: list | None = None) -> dict[int, Mark]:
    """Each probe in `ids` asked closed-book (or after its episode), in chunks that report progress;
    the replies go to `log` when given."""
    marks: dict[int, Mark] = {}
    chunk = max(1, config.generation_batch_size)
    with phases.phase(name, len(ids)) as update:
        for start in range(0, len(ids), chunk):
            part = ids[start:start + chunk]
            context = [probes[i].context for i in part] if in_context else None
            replies = answers(model, tokenizer, [probes[i].question for i in part], config, context=context)
            for i, reply in zip(part, replies):
                marks[i] = probes[i].mark(reply)
                if log is not None:
                    log.append({"phase": name, "case": probes[i].case, "question": probes[i].question,
                                "reply": reply, **marks[i]._asdict()})
            update(start + len(part))
    return marks


def general_accuracy(model, tokenizer, general: Sequence[dict], config: SleepConfig,
                     phases: Phases | None = None, name: str = "general", log: list | None = None) -> float | None:
    if not general:
        return None
    probes = [Probe("general", 0, None, g["question"], list(g["answers"])) for g in general]
    marks = ask(model, tokenizer, probes, range(len(probes)), config, phases or Phases(bars=False), name, log=log)
    return share(marks, marks)


def probe_items(cases: Sequence[dict]) -> list[tuple[dict, dict]]:
    return [(case, probe) for case in cases for probe in case["probes"]]


def accuracy(model, tokenizer, items, config: SleepConfig, in_context: bool = False) -> tuple[float, list[dict]]:
    """(case, probe) items' accuracy and per-probe rows (question, reply, correct), for bench scripts."""
    if not items:
        return 0.0, []
    questions = [probe["question"] for _, probe in items]
    context = [episode_messages(case["episode"]) for case, _ in items] if in_context else None
    replies = answers(model, tokenizer, questions, config, context=context)
    rows = [{"question": q, "reply": r, "correct": correct(r, p["answers"], p.get("reject") or ())}
            for q, r, (_, p) in zip(questions, replies, items)]
    return sum(r["correct"] for r in rows) / len(rows), rows


def with_adapter(base_path, adapter_dir, config):
    tokenizer, model = load_model(base_path, config)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir)).eval()
    return tokenizer, model


def night_adapters(out: Path) -> list[tuple[int, Path]]:
    """(night, adapter folder) of a finished run in `out` (`Bench.sleep_night` writes out/night-N/adapter),
    in night order; a night that published no adapter is left out."""
    nights = sorted((int(d.name.split("-")[1]), d / "adapter") for d in Path(out).glob("night-*"))
    return [(n, adapter) for n, adapter in nights if adapter.is_dir()]


# --- the naive baseline ------------------------------------------------------------------------------

def naive_sft(episodes, *, base_model, adapter_dir, config: SleepConfig, out_dir: Path,
              progress: Callable | None = None) -> Path:
    """Baseline: LoRA fine-tuning on the raw transcripts (causal LM loss on every chat token), one new
    expert per night like the recipe, the same number of steps and batch size."""
    tokenizer, model = load_model(base_model, config)
    experts, frozen = [], []
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir), adapter_name=PREVIOUS)
        experts, frozen = read_experts(adapter_dir), [PREVIOUS]
    model = grow_expert(model, rank=config.expert_rank, alpha=config.expert_alpha,
                        target_modules=config.target_modules, frozen=frozen, seed=config.seed)
    device = next(model.parameters()).device
    sequences = []
    for episode in episodes:
        ids = tokenizer.apply_chat_template(episode_messages(episode), tokenize=True)
        sequences.append(list(ids["input_ids"] if hasattr(ids, "keys") else ids))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    model.train()
    for step in range(config.steps):
        pick = torch.randint(len(sequences), (config.batch_size,), generator=generator).tolist()
        batch = [sequences[i] for i in pick]
        width = max(map(len, batch))
        ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        labels = torch.full((len(batch), width), -100)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, seq in enumerate(batch):
            ids[i, : len(seq)] = labels[i, : len(seq)] = torch.tensor(seq)
            mask[i, : len(seq)] = 1
        loss = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if progress:
            progress(step + 1, config.steps, float(loss.detach()))
    model.eval()
    stack = [adapter_factors(model, name) for name in frozen] + [adapter_factors(model, EXPERT)]
    experts = experts + [{"name": f"naive-{out_dir.name}", "rank": config.expert_rank}]
    return save_adapter(out_dir / "adapter", concatenate(stack), experts,
                        base_model_name_or_path=str(base_model))


# --- the run -----------------------------------------------------------------------------------------

@dataclass
class Track:
    """One trained system's nights: the served model (base, adapter, dreams), and per night the marks of
    the probes of nights <= n, general accuracy, seconds, the gate's verdict and the episodes slept on."""

    base: str | Path
    adapter: Path | None = None
    dreams: list = field(default_factory=list)
    after: list = field(default_factory=list)
    general_after: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    accepted: list = field(default_factory=list)
    episodes: list = field(default_factory=list)


@dataclass
class Bench:
    probes: list[Probe]
    general: list[dict]
    config: SleepConfig
    out: Path
    base_model: str | Path
    phases: Phases
    replies: list = field(default_factory=list)
    steps_tonight: int | None = None  # the recipe's trained steps of the night: the naive baseline's too

    def evaluate(self, track: Track, n: int, name: str, seconds: float, accepted: bool = True) -> None:
        """Ask the probes of nights <= n and the general set of the track's model; record night n."""
        tokenizer, model = with_adapter(track.base, track.adapter, self.config)
        ids = [i for i, p in enumerate(self.probes) if p.night <= n]
        track.after.append(ask(model, tokenizer, self.probes, ids, self.config, self.phases, f"{name} | closed-book",
                               log=self.replies))
        track.general_after.append(general_accuracy(model, tokenizer, self.general, self.config, self.phases,
                                                    f"{name} | general", log=self.replies))
        track.seconds.append(round(seconds, 1))
        track.accepted.append(accepted)

    def sleep_night(self, track: Track, n: int, episodes: list[dict]) -> bool:
        """The recipe's night n on `episodes` (only id and messages); the served model advances if accepted."""
        t0 = time.monotonic()
        result = sleep(episodes, base_model=track.base, adapter_dir=track.adapter, earlier_dreams=track.dreams,
                       config=self.config, out_dir=self.out / f"night-{n}", night=str(n),
                       progress=self.phases.callback(f"night {n} | sleep"), show_progress=False)
        self.phases.finish()
        seconds = time.monotonic() - t0
        parts = ", ".join(f"{k} {v:.0f}" for k, v in result.metrics.get("seconds", {}).items() if k != "total")
        scale = result.metrics.get("expert_scale", 1.0)
        scaled = f" expert at {scale:.2f} (refused at full scale: {result.metrics['full_scale']['reasons']})" \
            if scale != 1.0 else ""
        print(f"night {n} | sleep {seconds:.0f} s on {len(episodes)} episodes ({parts}) accepted={result.accepted} "
              f"{result.reasons}{scaled}",
              file=self.phases.stream, flush=True)
        if result.accepted:
            track.adapter, track.dreams = result.adapter_dir, result.dreams
            track.base = result.model_dir or track.base
        track.episodes.append(len(episodes))
        self.steps_tonight = result.metrics["train"]["steps"]
        self.evaluate(track, n, f"night {n} | sleep", seconds, result.accepted)
        return result.accepted

    def naive_night(self, track: Track, n: int, episodes: list[dict]) -> None:
        """Naive SFT on night n's transcripts, as many steps as the recipe trained that night."""
        t0 = time.monotonic()
        config = dataclasses.replace(self.config, steps=self.steps_tonight or self.config.steps)
        with self.phases.phase(f"night {n} | naive SFT", config.steps) as update:
            track.adapter = naive_sft(episodes, base_model=self.base_model, adapter_dir=track.adapter,
                                      config=config, out_dir=self.out / f"naive-{n}", progress=update)
        track.episodes.append(len(episodes))
        self.evaluate(track, n, f"night {n} | naive SFT", time.monotonic() - t0)


def run(dataset: Path, general_path: Path | None, nights: int, out: Path, config: SleepConfig,
        base_model: str | Path, log=print, phases: Phases | None = None, naive: bool = True) -> dict:
    """The whole benchmark; returns the results dict (also written to out/results.json). `naive=False`
    skips the naive-SFT baseline (it trains as many steps as the recipe: about half a run's time), for
    comparing the recipe's own settings; `baselines` then holds `no_sleep` only."""
    out.mkdir(parents=True, exist_ok=True)
    cases = load_jsonl(dataset)
    bench = Bench(load_probes(cases, nights), load_jsonl(general_path) if general_path else [], config, out,
                  base_model, phases or Phases())
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    started = time.monotonic()
    tokenizer, model = load_model(base_model, config)
    every = range(len(bench.probes))
    before = ask(model, tokenizer, bench.probes, every, config, bench.phases, "before | closed-book", log=bench.replies)
    in_context = ask(model, tokenizer, bench.probes, every, config, bench.phases, "before | in-context",
                     in_context=True, log=bench.replies)
    general_before = general_accuracy(model, tokenizer, bench.general, config, bench.phases, "before | general",
                                      log=bench.replies)
    del model
    results: dict = {"config": config.to_dict(), "base_model": str(base_model), "dataset": str(dataset),
                     "nights": nights, "general_before": general_before}
    tracks = {"sleep": Track(base_model), **({"naive_sft": Track(base_model)} if naive else {})}
    backlog: list[dict] = []  # a refused night's episodes wait for the next, as in the service
    for n in range(1, nights + 1):
        # the trainer sees an episode's id and messages, nothing that describes the test
        tonight = [{"id": c["id"], "messages": c["episode"]["messages"]} for c in cases if int(c["night"]) == n]
        accepted = bench.sleep_night(tracks["sleep"], n, backlog + tonight)
        backlog = [] if accepted else backlog + tonight
        if naive:
            bench.naive_night(tracks["naive_sft"], n, tonight)
        finish(results, bench, before, in_context, tracks, n, started)
        shown = [("sleep", results)] + ([("naive SFT", results["baselines"]["naive_sft"])] if naive else [])
        for name, r in shown:
            log(f"night {n}: {name} recall {_pct(r['closed_book_after'][-1])} retention "
                f"{[_pct(x) for x in r['retention'][-1]]} general {_pct(r['general_after'][-1])}")
    return results


def finish(results: dict, bench: Bench, before, in_context, tracks: dict[str, Track], done: int, started) -> None:
    """Fill the result keys from the nights done so far and write the files (partial until the end)."""
    probes, nights, every = bench.probes, results["nights"], range(len(bench.probes))
    after = {name: track.after for name, track in tracks.items()}
    after["no_sleep"] = no_sleep_marks(probes, before, done)
    sleep_track = tracks["sleep"]
    results.update(summarise(probes, every, before, in_context, after["sleep"], nights))
    results.update(general_after=sleep_track.general_after, seconds=sleep_track.seconds,
                   accepted=sleep_track.accepted, episodes_per_night=sleep_track.episodes,  # refused: counted again
                   nights_done=done, complete=done == nights)
    extra = {name: (track.general_after, track.seconds) for name, track in tracks.items() if name != "sleep"}
    extra["no_sleep"] = ([results["general_before"]] * done, [0.0] * done)
    results["baselines"] = {}
    for system, (general_after, seconds) in extra.items():
        s = summarise(probes, every, before, in_context, after[system], nights)
        keep = ("closed_book_before", "in_context", "closed_book_after", "retention", "stale")
        results["baselines"][system] = {**{k: s[k] for k in keep if k in s}, "general_after": general_after,
                                        "seconds": seconds}
    if categories(probes):
        results["by_category"] = by_category(probes, before, in_context, after, nights)
    results["total_seconds"] = time.monotonic() - started
    out = bench.out
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "replies.jsonl").write_text("".join(json.dumps(r) + "\n" for r in bench.replies))
    (out / "report.md").write_text(report(results))
    plot(results, out)


def _pct(x) -> str:
    return "-" if x is None else f"{x:.3f}"


# --- the command -------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reverie eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, type=Path, help="cases JSONL (shared/eval format v1 or v2)")
    parser.add_argument("--general", type=Path, default=None, help="general questions JSONL")
    parser.add_argument("--nights", type=int, default=3)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--config", default="cpu-default", help="shipped config name or YAML path")
    parser.add_argument("--model", default=None, help="base model folder (default: the bundled SmolLM2, exported once)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (YAML value)")
    parser.add_argument("--no-naive", action="store_true",
                        help="skip the naive-SFT baseline (about half the run's time): for comparing settings")
    args = parser.parse_args(argv)
    try:
        config = SleepConfig.from_yaml(args.config, **parse_overrides(args.set))
    except (ValueError, TypeError, OSError) as exc:
        parser.error(str(exc))
    base = args.model or _default_model()
    results = run(args.dataset, args.general, args.nights, args.out, config, base,
                  log=lambda msg: print(msg, file=sys.stderr, flush=True), naive=not args.no_naive)
    print(json.dumps({k: results[k] for k in ("closed_book_before", "in_context", "closed_book_after",
                                              "general_before", "general_after", "seconds")}))
    return 0


def parse_overrides(items: Sequence[str]) -> dict:
    """`--set KEY=VALUE` options as config overrides, each value read as YAML."""
    import yaml

    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set {item!r} is not KEY=VALUE")
        overrides[key] = yaml.safe_load(value)
    return overrides


def _default_model() -> Path:
    """The exported bundled SmolLM2 folder when present (`reverie model prepare` / the test cache).

    The trainer never imports the service: the `reverie eval` entry passes `--model` with the folder
    the service prepared.
    """
    import os

    for candidate in (os.environ.get("REVERIE_EVAL_MODEL"), Path.cwd() / ".cache" / "models" / "SmolLM2-135M-Instruct"):
        if candidate and (Path(candidate) / "config.json").is_file():
            return Path(candidate)
    raise SystemExit("reverie eval: pass --model with an HF model folder (e.g. the one `reverie model prepare` wrote)")


if __name__ == "__main__":
    raise SystemExit(main())
