"""Corrections: tonight's episode gives a new value for something an earlier night learned.

Earlier nights' questions about what an episode names are asked of it again (`recheck_questions`); when
the best answer names a value the earlier dream did not, and the episode names the old value or says the
same kind of fact, the earlier dreams of that question are superseded (`superseded`), and so are the old
episode's other dreams that name the old value. They leave replay and the gate's retention sample; the
recipe records them in `metrics.retired`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING

from trainer.frames import LOOSE, framed
from trainer.questions import PROMPT_WORDS, asks_what_you_said, handles, value_start
from trainer.text import CHANGE_VERBS, FROM_BEFORE_TO, STOPWORDS, entities, inflection_stem, sentences, words
from trainer.text import values as told_values  # `values` names each old answer's value below

if TYPE_CHECKING:
    from trainer.dreaming import Dream

# words that say how something was told, not what: never the kind of fact two statements share
_DISCOURSE = {"way", "btw", "update", "actually", "news", "guess", "fun", "fact", "anyway", "oh", "well", "also"}
# words that join a name to what it names: shared by facts of every kind about a person
_GLUE = {"called", "named", "name"}


def subject(question: str) -> tuple[set[str], str]:
    """What a question is about, and how it is named: the people it names ("named"), else the user's own
    things ("mine": "my dog"), else its words past the prompt's ("other")."""
    people = set().union(*(words(n) for n in entities(question, 8)))
    if people:
        return people, "named"
    mine = set().union(*(words(h) for h in handles(question)))
    if mine:
        return mine, "mine"
    return words(question) - PROMPT_WORDS, "other"


def dream_subject(dream: dict) -> set[str]:
    """What an earlier dream is about (`subject` of its question), a person by the whole name its answer
    gives: a cloze prompt cut after a first name ('Continue what I told you: "I heard Lora ..."') is about
    Lora Padun, not about every Lora (facts-public night 3 retired Lora Padun's home for Pashi Lora's)."""
    about, naming = subject(dream["question"])
    if naming == "named":
        for name in entities(dream.get("answer", ""), 8):
            if words(name) & about:
                about |= words(name)
    return about


def recheck_questions(earlier: Sequence[dict], told_by_id: dict[str, str], limit: int) -> dict[str, list[str]]:
    """Per tonight's episode, up to `limit` earlier questions about what it names again: each earlier dream
    with key terms whose subject's words (`dream_subject`) are all told tonight, in any inflection (`stems`):
    "Where does Tenett Mirbel work?" of an episode that mentions Tenett Mirbel, "What is my gym called?" of
    "I switched gyms". Asked of tonight's episode, they show whether it
    corrects them."""
    out: dict[str, list[str]] = {}
    if limit <= 0:
        return out
    for eid, text in told_by_id.items():
        said = words(text)
        said_stems = stems(said)  # "I switched gyms" names "my gym" again
        asked = [d["question"] for d in earlier if d.get("key_terms") and not _says_nothing_of_whom(d)
                 and (about := dream_subject(d)) and (about <= said or stems(about) <= said_stems)]
        if asked:
            out[eid] = list(dict.fromkeys(asked))[:limit]
    return out


def _says_nothing_of_whom(dream: dict) -> bool:
    """A cloze prompt cut before what it is about ('Continue what I told you: "Can you suggest a name for my
    new ..."'): it names no one and no thing of the user's, so any episode with its few words would seem to
    answer it anew (a book club's name once retired a kitten's)."""
    if not dream.get("cloze"):
        return False
    # "Repeat what I told you about Random thing, but my." is read as the quoted prompt is: the told
    # sentence's own first word, capitalised, names no one
    about = _REPEAT_ABOUT.fullmatch(dream["question"])
    question = f'Continue what I told you: "{about["prefix"]} ..."' if about else dream["question"]
    return subject(question)[1] == "other"


_REPEAT_ABOUT = re.compile(r"Repeat what (?:I told you|you looked up) about (?P<prefix>.+)\.")


@dataclass
class Retirement:
    """An earlier dream that tonight's episode corrects, and tonight's answer to the same question."""

    old: dict  # the earlier dream, as kept (`Dream.to_dict`)
    new: Dream | None  # tonight's best answer to its question (None: retired with its episode's old value)
    stale: set[str] = field(default_factory=set)  # the old value's words: a reply naming them is out of date

    def to_dict(self) -> dict:
        return {"question": self.old["question"], "answer": self.old["answer"], "night": self.old.get("night"),
                "episode_id": self.old["episode_id"], "old_values": sorted(self.stale),
                "by_episode": None if self.new is None else self.new.episode_id,
                "new_answer": None if self.new is None else self.new.answer}


def relearned(retired: Sequence[Retirement], told_by_id: dict[str, str]) -> list[Dream]:
    """Each earlier question retired only because its episode's old value was corrected (not asked again
    tonight: `Retirement.new` is None), answered with the correction's best answer that names a told value
    of its own ("Which town does Pavos Katen live in?" -> "Pavos Katen has just moved to Kamir."). Learned
    on earlier nights and never trained again, such a question kept its old answer after the correction's
    night (memory-public at b443fbe, night 3: "Which town does Pavos Katen live in now?" -> "... Palo").
    Cloze prompts and questions that name the old value are left alone. Unscored (the caller scores)."""
    best: dict[str, Dream] = {}
    for r in retired:
        new = r.new
        if new is None or not (words(new.answer) & told_values(told_by_id[new.episode_id])) - r.stale:
            continue
        if r.old["episode_id"] not in best or new.score > best[r.old["episode_id"]].score:
            best[r.old["episode_id"]] = new
    out, seen = [], set()
    for r in retired:
        new, question = best.get(r.old["episode_id"]), r.old["question"]
        if r.new is not None or new is None or r.old.get("cloze") or words(question) & r.stale:
            continue
        if (new.episode_id, question) not in seen:
            seen.add((new.episode_id, question))
            out.append(replace(new, question=question, specific=False, held_out=False, teacher_logits=None))
    return out


def dream_key(d: dict) -> tuple:
    """What tells one kept dream from another across nights."""
    return d["episode_id"], d.get("night"), d["question"], d["answer"]


# the user's people they have several of: a new one told is no correction of another unless the chat says so
_SEVERAL = {"neighbour", "neighbor", "friend", "colleague", "coworker", "cousin", "uncle", "aunt", "classmate",
            "teammate", "client", "niece", "nephew", "mate"}
_CHANGE_TOLD = re.compile(r"\b(?:now|new|anymore|any more|no longer|instead|changed|switched|replaced|moved|left|"
                          r"quit|retired|split up|broke up|fell out|these days)\b", re.IGNORECASE)


def superseded(earlier: Sequence[dict], answered: Sequence[Dream], told_by_id: dict[str, str],
               replied_by_id: Mapping[str, str] = MappingProxyType({})) -> list[Retirement]:
    """The earlier dreams tonight corrects. An earlier question asked again of tonight's episode
    (`recheck_questions`, or tonight's own question in the same words) whose best grounded answer names a
    value the earlier dream did not (a name or number the episode tells, `text.values`), where the episode
    also names the old value ("she left Gorbel") or says the same kind of fact (a word of the old answer
    besides its names and value, compared by `stems`: "worked" says what "works" said; or the fact's frame
    told beside the new value by a word that says it, not one small talk says of anything, `frames.LOOSE`: "I
    changed jobs, I'm at Brellco", not "I ride it to work"), or the new value told now where the old one
    stood, by the same preposition (`_placed_anew`: "My brother is at Ostrow Insurance now"), or the old
    answer said nothing
    of the user's own thing but its value, supersedes every earlier dream of that question; every other
    earlier dream of the same episode that names a superseded value goes with it. A person has many facts, the user's dog one name:
    words that only join a name to its value ("called") show the same kind of fact for the user's own
    things, never for a person. What the assistant said ("What did you come up with for our club?") is
    corrected only by what it says again: its new value must be in the episode's told assistant turns
    (`replied_by_id`); a user's "I play Gorka in a board game club" changes no suggestion. One has several
    neighbours and friends (`_SEVERAL`): another one told is no correction unless the chat says a change."""
    # tonight's own question that is an earlier one word for word asks it again too: the window that asks
    # it keeps one of the two (`candidates_of`), so a correction asked as a template retired nothing
    asked_before = {o["question"] for o in earlier if o.get("key_terms") and not _says_nothing_of_whom(o)}
    best: dict[str, Dream] = {}
    for d in answered:
        again = d.source == "recheck" or (d.question in asked_before and not d.cloze)
        if again and d.key_terms and (d.question not in best or d.score > best[d.question].score):
            best[d.question] = d
    retired: dict[tuple, Retirement] = {}
    old_values: dict[str, set[str]] = {}
    for old in earlier:
        new = best.get(old["question"])
        values = value_words(old["answer"], old.get("key_terms") or ())
        if new is None or not values:
            continue
        # a new value is a name or number told ("Work was exhausting" names none), by the assistant when it
        # is what the assistant said that is asked
        fresh = (set(new.key_terms) - set(old.get("key_terms") or ())) & told_values(told_by_id[new.episode_id])
        if asks_what_you_said(old["question"]):
            fresh &= words(replied_by_id.get(new.episode_id, ""))
        if not fresh:
            continue
        said = changed_facts(words(told_by_id[new.episode_id]))
        about, naming = subject(old["question"])
        if naming == "mine" and about & _SEVERAL and not _CHANGE_TOLD.search(told_by_id[new.episode_id]):
            continue  # "my neighbour Kapa Logor" after "my neighbour Mirett Lomir": another neighbour
        kind = words(old["answer"]) - values - about - _DISCOURSE
        if naming != "mine":
            kind -= _GLUE
        # the user's own thing (re-named tonight, asked the same question, a new value) told bare: "Tuesday."
        bare_own = naming == "mine" and not kind
        # or the same fact in other words, told beside the value: "Where do I work?" and "I changed jobs"
        told = told_by_id[new.episode_id]
        if (values & said or stems(kind) & stems(said) or bare_own
                or framed(kind | words(old["question"])) & framed(_around(told, fresh) - LOOSE)
                or _placed_anew(old["answer"], values, told, fresh)):
            retired[dream_key(old)] = Retirement(old, new, values - current_values(new.answer, new.key_terms))
            old_values.setdefault(old["episode_id"], set()).update(retired[dream_key(old)].stale)
    for old in earlier:  # the old episode's other dreams that still say a superseded value
        values = old_values.get(old["episode_id"], set())
        if dream_key(old) not in retired and values & words(old["answer"]):
            retired[dream_key(old)] = Retirement(old, None, values & words(old["answer"]))
    return list(retired.values())


# what says a value holds now, not before: "My brother is at Ostrow Insurance now"
_NOW_TOLD = re.compile(r"\b(?:now|anymore|any more|no longer|these days|nowadays)\b", re.IGNORECASE)
_PLACING = {"at", "in", "on", "with", "for"}


def _placed_anew(old_answer: str, values: set[str], told: str, fresh: set[str]) -> bool:
    """Whether a sentence tells the new value where the old answer had its own, by the same preposition, and
    says it holds now: "My brother works at Calder Bank" -> "My brother is at Ostrow Insurance now" (no word
    of work); not "Tenett's dog is called Rex now" for where Tenett works."""
    before_old = _word_before(old_answer, values)
    return before_old in _PLACING and any(
        _NOW_TOLD.search(sentence) and _word_before(sentence, fresh) == before_old
        for sentence in sentences(told) if words(sentence) & fresh)


def _word_before(text: str, found: set[str]) -> str | None:
    """The word just before the first of `found` in a text, lower-cased ("works at Calder Bank" -> "at")."""
    tokens = text.split()
    for i, token in enumerate(tokens):
        if i and words(token) & found:
            return tokens[i - 1].lower().strip(",;:")
    return None


def _around(told: str, fresh: set[str]) -> set[str]:
    """The words told around a new value: its sentence, and the one before when it opens with a pronoun
    ("We moved. We're in Tarnwick now."); not a line of small talk before it ("I swam before work. Anyway,
    Tenett's dog is called Rex" says nothing of where Tenett works)."""
    said = sentences(told)
    out: set[str] = set()
    for i, sentence in enumerate(said):
        if words(sentence) & fresh:
            out |= words(sentence)
            if i and re.match(r"(?:I|I'm|We|We're|He|He's|She|She's|They|They're)\b", sentence):
                out |= words(said[i - 1])
    return out


# a change names the fact it changes in other words: "moved to Drolir" changes where someone lives
_CHANGES = {
    "moved": {"lives", "live", "living", "village", "town", "city", "house", "home", "flat"},
    "relocated": {"lives", "live", "living", "village", "town", "city"},
    "hired": {"works", "work", "job"}, "joined": {"works", "work", "plays", "band", "team"},
    "renamed": {"called", "named", "name"},
}


def stems(found: set[str]) -> set[str]:
    """Words as the same kind of fact compares them: a few English inflections cut ("lived", "lives",
    "living" -> "liv"; "jobs" -> "job"), and every word that joins a name to its value one (`_GLUE`:
    "named", "naming", "called" -> "called"), so "we ended up naming him Kofi" says what "is called" said."""
    out = set()
    for word in found:
        if word in _GLUE or word in ("naming", "calls", "calling", "names"):
            out.add("called")
            continue
        out.add(inflection_stem(word))
    return out


def changed_facts(said: set[str]) -> set[str]:
    """A correcting episode's words, with the words of the facts its change verbs change (`_CHANGES`)."""
    return said.union(*(facts for verb, facts in _CHANGES.items() if verb in said))


# a clause with one of these says what no longer holds: "not Brimub", "she left Gorbel", "instead of Moxwyn"
_NO_LONGER = re.compile(r"\b(?:not|no longer|instead of|anymore|left|quit|used to|moved from|wrong)\b",
                        re.IGNORECASE)


def current_values(answer: str, key_terms: Sequence[str]) -> set[str]:
    """The key terms an answer states as holding now: those outside its clauses (split at , ; : "and", and
    before "not"/"instead of") that say what no longer holds. "Evdrotuz, not Brimub" -> {evdrotuz}; "she left Gorbel,
    she works at Lobel now" -> {lobel}. A correction often names the old value last, where the answer's
    last run of key terms (`value_words`) would read it as the new one."""
    clauses = re.split(r"[,;:]\s*|\s+and\s+|\s+(?=(?:not|instead of)\b)", answer)
    return set(key_terms) & set().union(*(words(c) for c in clauses if not _NO_LONGER.search(c)))


# a clause that names what no longer holds, in an answer about what holds: "not 6942", "instead of Dorvan",
# "she used to live in Mubzil" ("left"/"quit" stay: "X quit Fyrull and joined Cavyar" answers what X quit)
_NOT_NOW = re.compile(r"^(?:not|instead of|rather than)\b|\b(?:no longer|anymore|used to|moved from)\b", re.IGNORECASE)
# a change told in one clause, old value first: "moved from Ettgor to Shiten", "switched from Dorvan to Pellix"
_CHANGED_FROM = re.compile(rf"\b({CHANGE_VERBS}(?: \w+)?) {FROM_BEFORE_TO.pattern}", re.IGNORECASE)
# a question about what held before: its answer keeps the old value
_ASKS_BEFORE = re.compile(r"\b(?:use to|used to|before|previous(?:ly)?|old|originally|formerly|earlier)\b",
                          re.IGNORECASE)


def as_it_holds_now(answer: str, question: str) -> str:
    """An answer as the student should learn it: unless the question asks what held before, each sentence
    without the clauses that name what no longer holds ("the code is 9152 now, not 6942" -> "the code is
    9152 now.") and a change without its old value ("moved from Ettgor to Shiten" -> "moved to Shiten"),
    so a correction does not teach the value it corrects. A clause goes only when one that
    names a value (`_names_a_value`) stays. A lead-in ("By the way, ...") stays: answers that kept it were
    recalled more often on memory-dev-b (29 against 50 % on night 1 without it; docs/benchmarks-history.md,
    2026-12-05 evening), as if the told sentence's own opening cued its recital."""
    out: list[tuple[str, bool]] = []  # each sentence, and whether it only says what no longer holds
    now = not _ASKS_BEFORE.search(question)
    if now and not re.search(r"\bfrom\b", question, re.IGNORECASE):
        answer = _CHANGED_FROM.sub(r"\1 ", answer)  # "moved from Ettgor to Shiten" -> "moved to Shiten"
    for sentence in sentences(answer):
        clauses = [c for c in re.split(r"\s*[,;]\s*|\s+but\s+|\s+(?=(?:not|instead of|rather than)\b)", sentence) if c]
        kept = [c for c in clauses if not _NOT_NOW.search(c)]
        if len(kept) < len(clauses) and now and _names_a_value(kept):
            sentence = ", ".join(kept).rstrip(".!?") + "."
        gone = now and len(kept) < len(clauses) and not _names_a_value(kept)  # "I'm not at Lirobr anymore."
        out.append((sentence[:1].upper() + sentence[1:], gone))
    # a sentence that only says what no longer holds ("I don't work at Lirobr anymore.") goes when another
    # tells the value that holds now ("I'm with Hepcav now.")
    holding = [s for s, gone in out if not gone]
    return " ".join(s for s in (holding if _names_a_value(holding) else [s for s, _ in out]) if s)


def _names_a_value(clauses: Sequence[str]) -> bool:
    """Whether the clauses name a number or a name: a capitalised word that is no function word, nor one
    with a contraction ("Evdrotuz", "Moxev"; not "She", "I", "We're")."""
    tokens = " ".join(clauses).split()
    return any(any(ch.isdigit() for ch in t) or (t[:1].isupper() and t.lower().strip(",.!?").split("'")[0]
                                                 not in STOPWORDS) for t in tokens)


def value_words(answer: str, key_terms: Sequence[str]) -> set[str]:
    """The words of an answer's value: its last run of key terms ("bakery called Gorbel"), less the words
    that only join a name to it."""
    start = value_start(answer, set(key_terms))
    if start is None:
        return set()
    return words(" ".join(answer.split()[start:])) & set(key_terms) - _GLUE - _DISCOURSE


# a question that already asks about the present
_ASKS_NOW = re.compile(r"\b(?:now|these days|currently|at the moment|anymore|still)\b", re.IGNORECASE)


def asked_now(question: str) -> str | None:
    """The question as it is asked after a correction: "What is Dara's dog called?" -> "What is Dara's dog
    called now?". None for a prompt that is not a question or already asks about the present."""
    question = question.strip()
    if not question.endswith("?") or _ASKS_NOW.search(question):
        return None
    return question[:-1].rstrip() + " now?"
