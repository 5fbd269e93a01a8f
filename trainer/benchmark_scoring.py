"""`reverie eval`'s scoring: probes, marks and the recall keys of results.json (pure functions, no model).

Format v2 (shared/eval/README.md, "Format v2") is read by the same code as v1: a v1 file is a v2 file
without the extra fields, and scores exactly as before.
- A probe's `reject` answers make a reply wrong even when a right answer is in it too.
- A case named in another's `superseded_by` leaves `retention[n]` (so `closed_book_after[n]` too) from the
  night n its correction is slept (the correction's `night` in the file) on; a night row with nothing left
  to count reads None. Before any sleep and in context every probe counts.
- The correction's probes (those with `reject`) also report `stale`, each value the share of replies
  that name a rejected answer: {"probes", "before", "in_context", "after" (after night n, over the
  correcting probes of nights <= n), "retention" (after night n, per night of probes)}. `stale` is
  present only where some probe has `reject`.
- `kept[n-1][k-1]`: night k's probes recalled after night n as a share of their recall after night k, on
  the same probes (a case superseded in between leaves both sides): what "night-1 retention" means where
  `retention`'s rows after different nights count different probes.
- `by_category`: present only when some case has a `category` (a pure v1 file has none, so its
  results.json keeps the v1 keys); cases without one then count as the category "facts". Each entry has
  the top level's recall keys (`probes`, `closed_book_before`, `in_context`, `in_context_per_night`,
  `closed_book_after`, `retention`, and `stale` where it applies) and `baselines` with each baseline's
  `closed_book_after`, `retention` (and `stale`). General accuracy is one set: top level only.
Results are shares in [0, 1], None where nothing is counted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from trainer.episodes import episode_messages

UNCATEGORISED = "facts"  # the category of a case without one, in a file where other cases have one
SYSTEMS = ("sleep", "naive_sft", "no_sleep")


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def names(reply: str, candidates: Sequence[str]) -> bool:
    """Whether any candidate appears in the reply, case-insensitively, whitespace collapsed."""
    reply = normalise(reply)
    return any(normalise(a) in reply for a in candidates)


def correct(reply: str, expected: Sequence[str], reject: Sequence[str] = ()) -> bool:
    """README scoring: any answer appears in the reply and no rejected answer does (format v2's `reject`)."""
    return names(reply, expected) and not names(reply, reject)


class Mark(NamedTuple):
    """One reply's score: right or not, and (for a probe with `reject`) whether it names a rejected answer."""

    correct: bool
    stale: bool | None


@dataclass
class Probe:
    """One probe with what the harness needs of its case."""

    case: str
    night: int
    category: str | None
    question: str
    answers: list[str]
    reject: list[str] = field(default_factory=list)
    context: list[dict] = field(default_factory=list, repr=False)  # the case's episode (in-context runs)
    superseded_at: int | None = None  # the night its correction is slept: it leaves retention from then

    def mark(self, reply: str) -> Mark:
        return Mark(correct(reply, self.answers, self.reject), names(reply, self.reject) if self.reject else None)

    def counted_after(self, night: int) -> bool:
        """Whether it counts in the retention matrix after `night` (not yet superseded)."""
        return self.superseded_at is None or night < self.superseded_at


def load_jsonl(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def load_probes(cases: Sequence[dict], nights: int | None = None) -> list[Probe]:
    """Every probe of the cases of nights 1..nights (all nights when None), in file order."""
    by_id = {c["id"]: c for c in cases}
    mixed = any(c.get("category") for c in cases)
    out = []
    for case in cases:
        if nights is not None and not 1 <= int(case["night"]) <= nights:
            continue
        superseded_at = None
        if case.get("superseded_by") is not None:
            if case["superseded_by"] not in by_id:
                raise ValueError(f"case {case['id']!r}: superseded_by {case['superseded_by']!r} is not in the file")
            superseded_at = int(by_id[case["superseded_by"]]["night"])
        category = case.get("category") or (UNCATEGORISED if mixed else None)
        for p in case["probes"]:
            out.append(Probe(case["id"], int(case["night"]), category, p["question"], list(p["answers"]),
                             list(p.get("reject") or []), episode_messages(case["episode"]), superseded_at))
    return out


def categories(probes: Sequence[Probe]) -> dict[str, list[int]]:
    """Probe indices per category, in first-seen order ({} for a v1 file)."""
    out: dict[str, list[int]] = {}
    for i, p in enumerate(probes):
        if p.category is not None:
            out.setdefault(p.category, []).append(i)
    return out


def share(marks: dict[int, Mark], ids: Iterable[int], key: str = "correct") -> float | None:
    values = [getattr(marks[i], key) for i in ids]
    return sum(values) / len(values) if values else None


def summarise(probes: Sequence[Probe], ids: Sequence[int], before: dict[int, Mark], in_context: dict[int, Mark],
              after: Sequence[dict[int, Mark]], nights: int) -> dict:
    """The recall keys over probes `ids`: before and in-context on every night's probes; after night n
    (`after[n-1]`, the marks of the probes of nights <= n) per night of probes, superseded cases left out."""
    of_night = {n: [i for i in ids if probes[i].night == n] for n in range(1, nights + 1)}
    # counted[n-1][k-1]: night k's probes still counted after night n (a superseded case leaves)
    counted = [[[i for i in of_night[k] if probes[i].counted_after(n)] for k in range(1, n + 1)]
               for n in range(1, len(after) + 1)]
    retention = [[share(marks, same) for same in row] for marks, row in zip(after, counted)]
    out = {"probes": len(ids), "closed_book_before": share(before, ids), "in_context": share(in_context, ids),
           "in_context_per_night": [share(in_context, of_night[n]) for n in of_night],
           "closed_book_after": [row[-1] for row in retention], "retention": retention,
           "kept": kept(after, counted)}
    correcting = [i for i in ids if probes[i].reject]
    if correcting:
        of = {n: [i for i in correcting if probes[i].night == n] for n in of_night}
        out["stale"] = {
            "probes": len(correcting),
            "before": share(before, correcting, "stale"),
            "in_context": share(in_context, correcting, "stale"),
            "after": [share(marks, [i for i in correcting if probes[i].night <= n], "stale")
                      for n, marks in enumerate(after, start=1)],
            "retention": [[share(marks, of[k], "stale") for k in range(1, n + 1)]
                          for n, marks in enumerate(after, start=1)],
        }
    return out


def kept(after: Sequence[dict[int, Mark]], counted: Sequence[Sequence[list[int]]]) -> list[list]:
    """After night n, per night k <= n: recall of night k's probes over their recall after night k, on the
    same probes (`counted[n-1][k-1]`, those still counted after n), so a case superseded in between leaves
    both sides. None where nothing is counted or nothing was recalled after night k."""
    out = []
    for marks, row in zip(after, counted):
        ratios = []
        for k, same in enumerate(row, start=1):
            now, then = share(marks, same), share(after[k - 1], same)
            ratios.append(now / then if now is not None and then else None)
        out.append(ratios)
    return out


def no_sleep_marks(probes: Sequence[Probe], before: dict[int, Mark], done: int) -> list[dict[int, Mark]]:
    """The no-sleep baseline: after every night the model is the one before any sleep."""
    return [{i: m for i, m in before.items() if probes[i].night <= n} for n in range(1, done + 1)]


def by_category(probes: Sequence[Probe], before, in_context, after: dict[str, list], nights: int) -> dict:
    """Per category: the sleep track's recall keys and each baseline's closed_book_after/retention/stale."""
    out = {}
    for name, ids in categories(probes).items():
        entry = summarise(probes, ids, before, in_context, after["sleep"], nights)
        entry["baselines"] = {}
        for system in [system for system in SYSTEMS[1:] if system in after]:  # naive_sft: not with --no-naive
            s = summarise(probes, ids, before, in_context, after[system], nights)
            entry["baselines"][system] = {k: s[k] for k in ("closed_book_after", "retention", "stale") if k in s}
        out[name] = entry
    return out

