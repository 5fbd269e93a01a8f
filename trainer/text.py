"""Words as the trainer compares them: content words, names, sentences. Pure string functions, no model.

Everything that decides whether two texts say the same thing (a dream's key terms, a reply that recalls
them, which episode a question names) goes through `words`, so they all agree on what a word is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

STOPWORDS = set(
    """a an the and or but if of in on at to for from by with about as is are was were be been being am
    i me my mine you your yours he him his she her hers it its we us our they them their this that these
    those there here what which who whom whose when where why how do does did done have has had having
    not no yes so very just also too can could will would shall should may might must than then now
    new one some any all into over under up down out again more most such only own same other told tell
    said say know remind repeat summarize sentence happened what's that's it's i'm i'll i've you're
    thanks thank got noted lovely hear great good okay ok sure really quick update heard did""".split()
)
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\-]*")
# the titles said before a name, the name's first word: "Dr. Alvo Pen", "a teacher called Ms. Arvel"
TITLES = ("Mr", "Mrs", "Ms", "Dr", "Prof", "St")
_NAME = re.compile(rf"(?:(?:{'|'.join(TITLES)})\.\s+)?(?:[A-Z][\w\-]+)(?:\s+[A-Z][\w\-]+)*")
# a title's full stop ends no sentence: "my landlord is Mr. Grebbins" is one
_TITLE = "".join(rf"(?<!\b{title}\.)" for title in (*TITLES, "Jr"))
_SENTENCE_END = re.compile(rf"(?<=[.!?]){_TITLE}\s+|\n+")
_CLAUSE_END = re.compile(rf"(?<=[.!?:;]){_TITLE}\s+|\n+")

# the place or thing left in "from <old> to <new>": "moved (from Ettgor )to Shiten", "switched (from tea )to coffee"
FROM_BEFORE_TO = re.compile(r"\bfrom\s+(?:[\w'.-]+\s+){1,4}?(?=to\b)", re.IGNORECASE)
# the verbs that tell a change of value: what follows their "from" no longer holds
CHANGE_VERBS = r"(?:moved|switched|changed|relocated|transferred)"


def normal(word: str) -> str:
    """A word as `words` and `key_term_spans` compare it: lower-cased, possessive stripped."""
    return word.lower().removesuffix("'s").strip("'-")


def words(text: str) -> set[str]:
    """Lower-cased content words (no stop words, possessives stripped)."""
    out = set()
    for w in _WORD.findall(text):
        w = normal(w)
        if (len(w) >= 2 or w.isdigit()) and w not in STOPWORDS:  # "my daughter is 7"
            out.add(w)
    return out


# capitalised words that name nothing, wherever they stand: a contraction ("I'd go with Kedhep") or an
# interjection a tokenizer splits, so the common-word test does not catch it ("Hmm, okay")
_CONTRACTION = re.compile(r"(?:'d|'ll|'re|'ve|'m|n't)$")
_INTERJECTIONS = {"hmm", "hm", "um", "umm", "uh", "ah", "oh", "aha", "wow", "hey", "yay", "ugh", "oops",
                  "yeah"}


def values(text: str, common: Callable[[str], bool] | None = None) -> set[str]:
    """The words (as `words` reads them) that look like a told value rather than talk: numbers, and
    capitalised words inside a sentence or in a run of capitalised words ("Brimub", "Janfyr Road",
    "7197"). With `common` given, a capitalised word that starts a sentence counts only when it is not a
    common word, in a run or not: "Brimub is my dog" names a value, "Traffic was terrible" and the "Try" of
    "Try Tuzab" do not; without it, only in a run. Contractions and interjections never count. Small talk
    names few such words; a fact names its value. A lower-case value ("tea") is not seen."""
    out: set[str] = set()
    for sentence in sentences(text):
        matches = list(_WORD.finditer(sentence))
        for i, match in enumerate(matches):
            token, word = match.group(), normal(match.group())
            if (len(word) < 2 and not word.isdigit()) or word in STOPWORDS or word in _INTERJECTIONS or \
                    _CONTRACTION.search(word):
                continue
            if i == 0 and common is not None:
                capital = token[0].isupper() and not common(word)
            else:
                run = any(0 <= j < len(matches) and matches[j].group()[0].isupper()
                          and normal(matches[j].group()) not in STOPWORDS for j in (i - 1, i + 1))
                capital = token[0].isupper() and (i > 0 or run)
            if capital or any(c.isdigit() for c in token):
                out.add(word)
    return out


def key_term_spans(text: str, key_terms: Sequence[str]) -> list[tuple[int, int]]:
    """Character spans of the words of `text` that `words` reads as one of `key_terms`."""
    keys = set(key_terms)
    return [match.span() for match in _WORD.finditer(text) if normal(match.group()) in keys]


_CLAUSE_SPLIT = re.compile(r",\s*|\s+(?:and|but|so)\s+", re.IGNORECASE)


def clauses(sentence: str) -> list[str]:
    """A sentence's clauses, split at commas and at "and", "but", "so": "I'm opening a bakery and can't think
    of a name for it." -> ["I'm opening a bakery", "can't think of a name for it."]. One clause when none."""
    return [c.strip() for c in _CLAUSE_SPLIT.split(sentence) if c.strip()]


def sentences(text: str) -> list[str]:
    """A text's sentences (split after . ! ? and at line breaks), stripped, empty ones dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


_SUFFIXES = ("ing", "ed", "es", "s")


def inflection_stem(word: str) -> str:
    """A lower-case word with a few English inflections cut, so that forms of one word meet: "lived",
    "lives", "living", "live" -> "liv"; "switched", "switch" -> "switch"; "jobs" -> "job"."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[:-len(suffix)]
            if suffix in ("ed", "es") and word.endswith("i"):  # "studied", "studies" meet "study"
                word = word[:-1] + "y"
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


# capitalised only as a sentence's first word, before a name: "Remember Dara?", "Try Maison Ardel, it's cosy.",
# "Yesterday Ruben got a job"
_OPENERS = {"remember", "did", "my", "the", "quick", "try", "visit", "maybe", "perhaps", "definitely", "consider",
            "check", "yesterday", "today", "tonight", "tomorrow", "recently", "apparently", "sadly", "luckily",
            "finally", "honestly", "anyway"}


def entities(text: str, limit: int) -> list[str]:
    """Names in a text, relation-agnostic: capitalised word runs; multi-word names first.

    A single capitalised word that starts a sentence, or a quotation at its start, is ignored (it is
    usually just capitalised: 'Continue what I told you: "Before I forget, ..."' names no one).
    """
    found: list[tuple[int, str]] = []
    for sentence in _CLAUSE_END.split(text):
        for match in _NAME.finditer(sentence):
            name = match.group(0).removesuffix("'s")
            parts = name.split()
            initial = not sentence[:match.start()].strip(" \"'\u201c\u2018(")
            if initial and parts[0].lower() in STOPWORDS | _OPENERS:  # "Try Maison Ardel": the name is after
                parts = parts[1:]
            if not parts or (initial and len(parts) == 1 and len(name.split()) == 1):
                continue
            name = " ".join(parts)
            if name.lower() in STOPWORDS:
                continue
            found.append((len(parts), name))
    ordered = [n for _, n in sorted(found, key=lambda t: -t[0])]
    return list(dict.fromkeys(ordered))[:limit]


def mask_names(text: str) -> str:
    """The text with every capitalised word run replaced by `_`."""
    return _NAME.sub("_", text)


def owner_lower(phrase: str) -> str:
    """A phrase that began a sentence, as it reads inside a question: "Our quiz team" -> "our quiz team"."""
    first, _, rest = phrase.partition(" ")
    return f"{first.lower()} {rest}" if first.lower() in ("my", "our", "the") else phrase
