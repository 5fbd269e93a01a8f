"""`reverie eval`: the knowledge-incorporation benchmark of shared/eval/README.md, end to end.

    reverie eval --dataset ../shared/eval/facts-public.jsonl --general ../shared/eval/general-public.jsonl \
        --nights 3 --out runs/eval --config cpu-default

For each night n the episodes of night n are consolidated by `trainer.sleep` (the served adapter
advances only when the gate accepts, as in production); probes are then asked closed-book. Baselines
on the same data: no sleep, and naive LoRA fine-tuning on the raw transcripts with the same step
budget. Writes DIR/results.json, DIR/report.md and PNG plots. Only this harness reads `probes`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from trainer.config import SleepConfig
from trainer.dreaming import episode_messages
from trainer.experts import (
    EXPERT,
    PREVIOUS,
    adapter_factors,
    concatenate,
    grow_expert,
    read_experts,
    save_adapter,
)
from trainer.recipe import answers, load_model, sleep


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def correct(reply: str, expected: Sequence[str]) -> bool:
    """README scoring: any answer appears in the reply, case-insensitively, whitespace collapsed."""
    reply = normalise(reply)
    return any(normalise(a) in reply for a in expected)


def load_jsonl(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def probe_items(cases: Sequence[dict]) -> list[tuple[dict, dict]]:
    return [(case, probe) for case in cases for probe in case["probes"]]


def accuracy(model, tokenizer, items, config: SleepConfig, in_context: bool = False) -> tuple[float, list[dict]]:
    if not items:
        return 0.0, []
    questions = [probe["question"] for _, probe in items]
    context = [episode_messages(case["episode"]) for case, _ in items] if in_context else None
    replies = answers(model, tokenizer, questions, config, context=context)
    rows = [{"question": q, "reply": r, "correct": correct(r, p["answers"])}
            for q, r, (_, p) in zip(questions, replies, items)]
    return sum(r["correct"] for r in rows) / len(rows), rows


def general_accuracy(model, tokenizer, general: Sequence[dict], config: SleepConfig) -> float | None:
    if not general:
        return None
    replies = answers(model, tokenizer, [g["question"] for g in general], config)
    return sum(correct(r, g["answers"]) for r, g in zip(replies, general)) / len(general)


def with_adapter(base_path, adapter_dir, config):
    tokenizer, model = load_model(base_path, config)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir)).eval()
    return tokenizer, model


def naive_sft(episodes, *, base_model, adapter_dir, config: SleepConfig, out_dir: Path) -> Path:
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
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    model.train()
    for _ in range(config.steps):
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
    model.eval()
    stack = [adapter_factors(model, name) for name in frozen] + [adapter_factors(model, EXPERT)]
    experts = experts + [{"name": f"naive-{out_dir.name}", "rank": config.expert_rank}]
    return save_adapter(out_dir / "adapter", concatenate(stack), experts, base_model_name_or_path=str(base_model),
                        target_modules=config.target_modules)


def run(dataset: Path, general_path: Path | None, nights: int, out: Path, config: SleepConfig,
        base_model: str | Path, log=print) -> dict:
    """The whole benchmark; returns the results dict (also written to out/results.json)."""
    out.mkdir(parents=True, exist_ok=True)
    cases = load_jsonl(dataset)
    general = load_jsonl(general_path) if general_path else []
    by_night = {n: [c for c in cases if int(c["night"]) == n] for n in range(1, nights + 1)}
    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    started = time.monotonic()

    tokenizer, model = load_model(base_model, config)
    items = {n: probe_items(by_night[n]) for n in by_night}
    before = {n: accuracy(model, tokenizer, items[n], config)[0] for n in by_night}
    in_context = {n: accuracy(model, tokenizer, items[n], config, in_context=True)[0] for n in by_night}
    general_before = general_accuracy(model, tokenizer, general, config)
    results: dict = {
        "config": config.to_dict(),
        "base_model": str(base_model),
        "dataset": str(dataset),
        "nights": nights,
        "closed_book_before": _mean(before, items),
        "in_context": _mean(in_context, items),
        "in_context_per_night": [in_context[n] for n in by_night],
        "general_before": general_before,
    }
    log(f"before: closed-book {results['closed_book_before']:.3f}, in-context {results['in_context']:.3f}, "
        f"general {general_before} ({time.monotonic() - started:.0f}s)")
    del model

    def evaluate(base, adapter_dir, n):
        tok, m = with_adapter(base, adapter_dir, config)
        row = [accuracy(m, tok, items[i], config)[0] for i in range(1, n + 1)]
        return row, general_accuracy(m, tok, general, config)

    # growth_mode 'layers' makes a new base each night (and no adapter): the sleep track follows it
    systems = {"sleep": {"base": base_model, "adapter": None, "dreams": []}, "naive_sft": {"adapter": None}}
    tracks = {name: {"closed_book_after": [], "retention": [], "general_after": [], "seconds": [],
                     "accepted": [], "episodes": []} for name in systems}
    backlog: list[dict] = []  # a refused night's episodes wait for the next, as in the service
    for n in range(1, nights + 1):
        tonight = [{"id": c["id"], "messages": c["episode"]["messages"]} for c in by_night[n]]
        episodes = backlog + tonight
        # the recipe
        t0 = time.monotonic()
        state = systems["sleep"]
        result = sleep(episodes, base_model=state["base"], adapter_dir=state["adapter"],
                       earlier_dreams=state["dreams"], config=config, out_dir=out / f"night-{n}",
                       night=str(n), show_progress=sys.stderr.isatty())
        seconds = time.monotonic() - t0
        if result.accepted:
            state["adapter"], state["dreams"] = result.adapter_dir, result.dreams
            state["base"] = result.model_dir or state["base"]
        backlog = [] if result.accepted else episodes
        tracks["sleep"]["episodes"].append(len(episodes))
        row, gen = evaluate(state["base"], state["adapter"], n)
        _record(tracks["sleep"], row, gen, seconds, result.accepted)
        log(f"night {n}: sleep {seconds:.0f}s on {len(episodes)} episodes accepted={result.accepted} {result.reasons} "
            f"recall {row[-1]:.3f} retention {row} general {gen}")
        # naive fine-tuning on the raw transcripts, same step budget
        t0 = time.monotonic()
        naive = systems["naive_sft"]
        naive["adapter"] = naive_sft(tonight, base_model=base_model, adapter_dir=naive["adapter"],
                                     config=config, out_dir=out / f"naive-{n}")
        seconds = time.monotonic() - t0
        row, gen = evaluate(base_model, naive["adapter"], n)
        _record(tracks["naive_sft"], row, gen, seconds, True)
        log(f"night {n}: naive SFT {seconds:.0f}s recall {row[-1]:.3f} retention {row} general {gen}")

        _finish(results, tracks, before, by_night, general_before, n, started, out, final=n == nights)
    return results


def _finish(results, tracks, before, by_night, general_before, done, started, out, final) -> None:
    """Fill the result keys from the nights done so far and write results.json (partial until the end)."""
    results.update({k: tracks["sleep"][k] for k in ("closed_book_after", "retention", "general_after", "seconds")})
    results["accepted"] = tracks["sleep"]["accepted"]
    results["episodes_per_night"] = tracks["sleep"]["episodes"]  # a refused night's episodes count again
    results["nights_done"] = done
    results["complete"] = final
    results["baselines"] = {
        "naive_sft": {"closed_book_before": results["closed_book_before"], "in_context": results["in_context"],
                      **{k: tracks["naive_sft"][k] for k in ("closed_book_after", "retention", "general_after",
                                                              "seconds")}},
        "no_sleep": {"closed_book_before": results["closed_book_before"], "in_context": results["in_context"],
                     "closed_book_after": [before[n] for n in range(1, done + 1)],
                     "retention": [[before[i] for i in range(1, n + 1)] for n in range(1, done + 1)],
                     "general_after": [general_before] * done, "seconds": [0.0] * done},
    }
    results["total_seconds"] = time.monotonic() - started
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "report.md").write_text(report(results))
    plot(results, out)


def _mean(per_night: dict, items: dict) -> float:
    total = sum(len(items[n]) for n in per_night)
    return sum(per_night[n] * len(items[n]) for n in per_night) / total if total else 0.0


def _record(track, row, general, seconds, accepted):
    track["closed_book_after"].append(row[-1])
    track["retention"].append(row)
    track["general_after"].append(general)
    track["seconds"].append(round(seconds, 1))
    track["accepted"].append(accepted)


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.1%}" if isinstance(x, float) else str(x)


def report(r: dict) -> str:
    nights = r.get("nights_done", r["nights"])
    head = "| | " + " | ".join(f"night {n}" for n in range(1, nights + 1)) + " |\n|---|" + "---|" * nights + "\n"
    lines = [
        f"# Sleep benchmark: {Path(r['dataset']).name}, {nights} nights, base `{r['base_model']}`\n",
        f"- closed-book before any sleep: {_fmt(r['closed_book_before'])}",
        f"- in-context (ceiling): {_fmt(r['in_context'])}",
        f"- general before: {_fmt(r['general_before'])}",
        f"- total wall time: {r['total_seconds']:.0f} s\n",
        "## Closed-book recall of each night's probes, after that night\n",
        head.rstrip("\n"),
        "| sleep | " + " | ".join(_fmt(x) for x in r["closed_book_after"]) + " |",
        "| naive SFT | " + " | ".join(_fmt(x) for x in r["baselines"]["naive_sft"]["closed_book_after"]) + " |",
        "| no sleep | " + " | ".join(_fmt(x) for x in r["baselines"]["no_sleep"]["closed_book_after"]) + " |",
        "| in-context | " + " | ".join(_fmt(x) for x in r["in_context_per_night"][:nights]) + " |",
        "| general (sleep) | " + " | ".join(_fmt(x) for x in r["general_after"]) + " |",
        "| general (naive) | " + " | ".join(_fmt(x) for x in r["baselines"]["naive_sft"]["general_after"]) + " |",
        "| sleep seconds | " + " | ".join(f"{x:.0f}" for x in r["seconds"]) + " |",
        "| accepted by gate | " + " | ".join(str(x) for x in r["accepted"]) + " |",
        "| episodes slept on | " + " | ".join(str(x) for x in r.get("episodes_per_night", [])) + " |",
        "\n## Retention: row = probes of night i, column = after night n (sleep)\n",
        head.rstrip("\n"),
    ]
    for i in range(nights):
        cells = [_fmt(r["retention"][n][i]) if i <= n else "" for n in range(nights)]
        lines.append(f"| night {i + 1} probes | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(r: dict, out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plots are optional; the numbers are in results.json
        return
    nights = list(range(1, r.get("nights_done", r["nights"]) + 1))
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(nights, r["closed_book_after"], "o-", label="sleep")
    ax.plot(nights, r["baselines"]["naive_sft"]["closed_book_after"], "s--", label="naive SFT")
    ax.plot(nights, r["baselines"]["no_sleep"]["closed_book_after"], "x:", label="no sleep")
    ax.plot(nights, r["in_context_per_night"][: len(nights)], "^-", alpha=0.5, label="in-context")
    ax.set(xlabel="night", ylabel="closed-book recall", ylim=(0, 1), xticks=nights, title="Recall per night")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "recall.png", dpi=120)
    plt.close(fig)
    matrix = [[r["retention"][n][i] if i <= n else float("nan") for n in range(len(nights))] for i in range(len(nights))]
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    im = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
    ax.set(xticks=range(len(nights)), xticklabels=[f"after {n}" for n in nights], yticks=range(len(nights)),
           yticklabels=[f"night {n}" for n in nights], title="Retention")
    for i in range(len(nights)):
        for n in range(i, len(nights)):
            ax.text(n, i, f"{matrix[i][n]:.0%}", ha="center", va="center", color="w")
    fig.colorbar(im)
    fig.tight_layout()
    fig.savefig(out / "retention.png", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reverie eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, type=Path, help="facts JSONL (shared/eval format)")
    parser.add_argument("--general", type=Path, default=None, help="general questions JSONL")
    parser.add_argument("--nights", type=int, default=3)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--config", default="cpu-default", help="shipped config name or YAML path")
    parser.add_argument("--model", default=None, help="base model folder (default: the bundled SmolLM2, exported once)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (YAML value)")
    args = parser.parse_args(argv)
    try:
        config = SleepConfig.from_yaml(args.config, **parse_overrides(args.set))
    except (ValueError, TypeError, OSError) as exc:
        parser.error(str(exc))
    base = args.model or _default_model()
    results = run(args.dataset, args.general, args.nights, args.out, config, base,
                  log=lambda msg: print(msg, file=sys.stderr, flush=True))
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
