"""What `reverie eval` shows and writes besides results.json: progress while it runs, report.md, plots."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path


class Phases:
    """The run's progress on `stream`: while a phase runs, a tqdm bar on a terminal; when it ends, on a
    terminal or not, one flushed line with its wall time, `night 2 | sleep | dream 2/2 done in 131 s`."""

    def __init__(self, stream=None, bars: bool | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.bars = bool(getattr(self.stream, "isatty", lambda: False)()) if bars is None else bars
        self.name: str | None = None
        self.bar = None
        self.last = time.monotonic()  # when the current phase last reported (a sleep phase ends there)

    def start(self, name: str, total: int | None, since: float | None = None) -> None:
        self.finish()
        self.name, self.step, self.total, self.loss = name, 0, total, None
        self.started = self.last = time.monotonic() if since is None else since
        if self.bars:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=name, file=self.stream, leave=False, dynamic_ncols=True)

    def update(self, step: int, total: int | None = None, loss: float | None = None) -> None:
        self.step, self.total = step, total or self.total
        self.loss = loss if loss is not None else self.loss
        self.last = time.monotonic()
        if self.bar is not None:
            self.bar.total = self.total
            self.bar.update(step - self.bar.n)
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.3f}")

    def finish(self) -> None:
        if self.name is None:
            return
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        steps = f" {self.step}/{self.total}" if self.total and self.total > 1 else ""
        loss = f" (loss {self.loss:.3f})" if self.loss is not None else ""
        print(f"{self.name}{steps} done in {self.last - self.started:.0f} s{loss}", file=self.stream, flush=True)
        self.name = None

    @contextmanager
    def phase(self, name: str, total: int | None = None):
        """A phase of the harness's own: yields `update(step)`; finished on exit."""
        self.start(name, total)
        try:
            yield self.update
            self.last = time.monotonic()
        finally:
            self.finish()

    def callback(self, prefix: str) -> Callable:
        """The recipe's `progress(phase, step, total, loss)`: a phase runs from the previous phase's last
        report to its own last one (the work before its first report is its own)."""

        def progress(phase: str, step: int, total: int, loss: float | None) -> None:
            name = f"{prefix} | {phase}"
            if name != self.name:
                self.start(name, total, since=self.last)
            self.update(step, total, loss)

        return progress



def _fmt(x) -> str:
    return "-" if x is None else f"{x:.1%}" if isinstance(x, float) else str(x)


def _row(label: str, values, nights: int) -> str:
    values = list(values or [])[:nights]
    return f"| {label} | " + " | ".join(_fmt(v) for v in values + [None] * (nights - len(values))) + " |"


def _head(nights: int, first: str = "") -> str:
    return f"| {first} | " + " | ".join(f"night {n}" for n in range(1, nights + 1)) + " |\n|---|" + "---|" * nights


def _recall_rows(r: dict, baselines: dict, nights: int) -> list[str]:
    """Closed-book recall per night for the sleep and the baselines, the in-context ceiling, and the
    share of correcting probes' replies that still name the old value (where the set has corrections)."""
    naive = baselines.get("naive_sft")  # absent from a run with --no-naive
    lines = [_row("sleep", r["closed_book_after"], nights),
             *([_row("naive SFT", naive["closed_book_after"], nights)] if naive else []),
             _row("no sleep", baselines["no_sleep"]["closed_book_after"], nights),
             _row("in-context", r["in_context_per_night"], nights)]
    if "stale" in r:
        lines += [_row("old value named, corrections so far (sleep)", r["stale"]["after"], nights),
                  *([_row("old value named (naive SFT)", naive.get("stale", {}).get("after"), nights)] if naive else []),
                  _row("old value named (no sleep)", baselines["no_sleep"].get("stale", {}).get("after"), nights)]
    return lines


def _retention(retention: list, nights: int) -> list[str]:
    lines = [_head(nights)]
    for i in range(nights):
        cells = [_fmt(retention[n][i]) if i <= n and n < len(retention) else "" for n in range(nights)]
        lines.append(f"| night {i + 1} probes | " + " | ".join(cells) + " |")
    return lines


def report(r: dict) -> str:
    nights = r.get("nights_done", r["nights"])
    lines = [
        f"# Sleep benchmark: {Path(r['dataset']).name}, {nights} nights, base `{r['base_model']}`\n",
        f"- closed-book before any sleep: {_fmt(r['closed_book_before'])}",
        f"- in-context (ceiling): {_fmt(r['in_context'])}",
        f"- general before: {_fmt(r['general_before'])}",
        f"- total wall time: {r['total_seconds']:.0f} s\n",
        "## Closed-book recall of each night's probes, after that night\n",
        _head(nights),
        *_recall_rows(r, r["baselines"], nights),
        _row("general (sleep)", r["general_after"], nights),
        *([_row("general (naive)", r["baselines"]["naive_sft"]["general_after"], nights)]
          if "naive_sft" in r["baselines"] else []),
        "| sleep seconds | " + " | ".join(f"{x:.0f}" for x in r["seconds"]) + " |",
        "| accepted by gate | " + " | ".join(str(x) for x in r["accepted"]) + " |",
        "| episodes slept on | " + " | ".join(str(x) for x in r.get("episodes_per_night", [])) + " |",
        "\n## Retention: row = probes of night i, column = after night n (sleep; superseded cases left out)\n",
        *_retention(r["retention"], nights),
    ]
    if "kept" in r:  # results.json files written before it had the key still report
        lines += ["\n## Kept: recall after night n over recall after night i, of the same probes (sleep)\n",
                  *_retention(r["kept"], nights)]
    if "stale" in r:
        lines += ["\n## Corrections: share of replies naming the old value, after night n (sleep)\n",
                  f"- {r['stale']['probes']} correcting probes; before any sleep {_fmt(r['stale']['before'])}, "
                  f"in context {_fmt(r['stale']['in_context'])}\n",
                  *_retention(r["stale"]["retention"], nights)]
    for name, c in r.get("by_category", {}).items():
        lines += [f"\n## Category `{name}`: {c['probes']} probes, closed-book before {_fmt(c['closed_book_before'])}, "
                  f"in context {_fmt(c['in_context'])}\n", _head(nights), *_recall_rows(c, c["baselines"], nights),
                  _row("night-1 probes (sleep)", [row[0] for row in c["retention"]], nights)]
    return "\n".join(lines) + "\n"


def _nan(values) -> list[float]:
    return [float("nan") if v is None else v for v in values]


def plot(r: dict, out: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plots are optional; the numbers are in results.json
        return
    nights = list(range(1, r.get("nights_done", r["nights"]) + 1))
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(nights, _nan(r["closed_book_after"]), "o-", label="sleep")
    if "naive_sft" in r["baselines"]:
        ax.plot(nights, _nan(r["baselines"]["naive_sft"]["closed_book_after"]), "s--", label="naive SFT")
    ax.plot(nights, _nan(r["baselines"]["no_sleep"]["closed_book_after"]), "x:", label="no sleep")
    ax.plot(nights, _nan(r["in_context_per_night"][: len(nights)]), "^-", alpha=0.5, label="in-context")
    ax.set(xlabel="night", ylabel="closed-book recall", ylim=(0, 1), xticks=nights, title="Recall per night")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "recall.png", dpi=120)
    plt.close(fig)
    size = len(nights)
    matrix = [_nan([r["retention"][n][i] if i <= n else None for n in range(size)]) for i in range(size)]
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    im = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
    ax.set(xticks=range(size), xticklabels=[f"after {n}" for n in nights], yticks=range(size),
           yticklabels=[f"night {n}" for n in nights], title="Retention")
    for i in range(size):
        for n in range(i, size):
            if r["retention"][n][i] is not None:
                ax.text(n, i, f"{matrix[i][n]:.0%}", ha="center", va="center", color="w")
    fig.colorbar(im)
    fig.tight_layout()
    fig.savefig(out / "retention.png", dpi=120)
    plt.close(fig)
