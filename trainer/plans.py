"""What the assistant planned when asked to, as the user recalls it later: the plan asked for ("Plan a three-day
trip to Ostrava for me." -> "What did you plan for my three-day trip to Ostrava?") and each item of a plan told
item by item ("Day 2: a day trip to Hradec Falls." -> "What did you plan for day 2?"). The answers are the
assistant's reply (`questions.asks_what_you_said`); English word order, no model.
"""

from __future__ import annotations

import re

from trainer.chat import Messages
from trainer.decisions import POLITE
from trainer.episodes import answer_to, answered_request
from trainer.statements import LEAD

# a plan asked for: "Plan a three-day trip to Ostrava for me.", "Make me a weekly workout plan."
_PLAN_A = re.compile(rf"^{POLITE}(?P<verb>plan|organi[sz]e|map\s+out|make|put\s+together|draw\s+up|write|create)"
                     r"\s+(?:(?P<me>me|us)\s+)?(?:a|an)\s+(?P<thing>[\w\s'-]+?)(?:\s+for\s+(?P<whom>me|us))?"
                     r"(?:,?\s*please)?[.?!]*$", re.IGNORECASE)
# what "make" asks for is a plan only when it says so: "Make me a weekly workout plan", not "Make me a sandwich"
_PLAN_WORDS = re.compile(r"\b(?:plan|schedule|itinerary|routine|timetable|programme|program|agenda|menu|list)$")
# an item of a plan, at the start of a sentence or a line: "Day 2: a day trip", "Wednesday: swimming"
_LABEL = re.compile(r"(?:^|(?<=[.!?\n])\s*)(?P<label>Day\s+\d+|Week\s+\d+|(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day|"
                    r"Morning|Afternoon|Evening|Night|Breakfast|Lunch|Dinner)\s*:", re.IGNORECASE)
_MEALS = {"breakfast", "lunch", "dinner"}


def plan_questions(messages: Messages) -> list[str]:
    """The questions a plan the assistant made is recalled by: the plan asked for, in the user's words, and
    each item of a reply that lists two or more under their labels (days, weekdays, parts of a day, meals)."""
    out: list[str] = []
    for turn, message in enumerate(messages):
        if not answered_request(messages, turn):
            continue
        asked = _PLAN_A.match(LEAD.sub("", message["content"].strip()))
        thing = _plan_asked(asked) if asked else None
        if thing and _PLAN_WORDS.search(thing):  # "my weekly workout plan": what is in it
            out += [f"What did you put in {thing}?", f"What did you suggest for {thing}?"]
        elif thing:
            out += [f"What did you plan for {thing}?", f"What did you suggest for {thing}?"]
        labels = [_as_asked(m["label"]) for m in _LABEL.finditer(messages[answer_to(messages, turn)]["content"])]
        if len(labels) >= 2:  # one label alone is a sentence's own ("Note: ..."), no plan
            for label in dict.fromkeys(labels):
                out += [f"What did you plan for {label}?", f"What did you suggest for {label}?"]
    return list(dict.fromkeys(out))


def _plan_asked(asked: re.Match) -> str | None:
    """The plan a request asks for, as the user names it later: "my three-day trip to Ostrava"; None for a
    thing made that is no plan ("Make me a sandwich")."""
    thing = asked["thing"].strip()
    if asked["verb"].lower() not in ("plan", "organise", "organize", "map out") and not _PLAN_WORDS.search(
            thing.lower()):
        return None
    whose = "our" if "us" in ((asked["me"] or "").lower(), (asked["whom"] or "").lower()) else "my"
    return f"{whose} {thing}"


def _as_asked(label: str) -> str:
    """A plan's label as a question names it: "Day 2" -> "day 2", "Morning" -> "the morning", "Lunch" ->
    "lunch", "Wednesday" stays."""
    low = " ".join(label.lower().split())
    if low.startswith(("day ", "week ")) or low in _MEALS:
        return low
    if low in ("morning", "afternoon", "evening", "night"):
        return f"the {low}"
    return low.capitalize()
