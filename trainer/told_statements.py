"""An episode's told sentences turned into the questions their values answer: which sentences tell a value,
where each is cut (`turned_questions`), and the questions a named thing asks ("What is X's band called?",
"What is my cat called?"). The sentence itself is turned by `trainer.statements`; `rule_questions` is what
dreaming asks of a window by rule, these and the requests of `trainer.decisions`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Collection, Sequence

from trainer.chat import Messages
from trainer.decisions import request_questions, suggestion_questions
from trainer.episodes import TAG_QUESTION, TELLING_QUESTION, TOLD_THEN_ASKED, told
from trainer.plans import plan_questions
from trainer.paraphrases import (DATE, NUMBER, age_questions, asked_otherwise, how_long_questions, is_date,
                                 is_duration, when_questions, who_questions)
from trainer.pronouns import ADJECTIVES
from trainer.questions import PHRASE_END, distinctive, value_runs
from trainer.statements import LEAD, statement_questions
from trainer.text import CHANGE_VERBS, STOPWORDS, TITLES, sentences, words
from trainer.verbs import ADVERBS, PAST


def rule_questions(messages: Messages, episode_id: str, told_by_id: dict[str, str],
                   values: Collection[str] = ()) -> list[str]:
    """Every question English word order reads from a window: its told statements turned (`turned_questions`),
    what the user asked the assistant to decide and what it suggested unasked (`trainer.decisions`), what
    it planned (`trainer.plans`). A
    sentence those rules cannot read is a bug of theirs, not the user's: it costs the window these questions,
    with a warning naming the episode, not the night (a night that raised would raise again on the same
    backlog every night)."""
    try:
        return (turned_questions(messages, episode_id, told_by_id, values) + request_questions(messages)
                + suggestion_questions(messages) + plan_questions(messages))
    except Exception as error:  # noqa: BLE001 - any error of the rules, whatever the sentence
        warnings.warn(f"episode {episode_id}: questions turned from its sentences skipped "
                      f"({type(error).__name__}: {error})", RuntimeWarning, stacklevel=2)
        return []


def turned_questions(messages: Messages, episode_id: str, told_by_id: dict[str, str],
                     values: Collection[str] = ()) -> list[str]:
    """`statement_questions` of every told sentence of the user or of a tool's result (what the agent
    looked up: "The Velmar ferry leaves from pier 7" -> "Where does the Velmar ferry leave from?"), cut
    where a value begins: each of its last two runs of `values` (the episode's told values: names,
    numbers; a sentence without any, in an episode with some, is small talk), else its last run of words
    no other episode says; and "What is X's band called?" where a value names someone's thing ("X's band
    Cavyar")."""
    out: list[str] = []
    said = told(messages)
    for n, t in enumerate(said):
        if t.role not in ("user", "tool"):
            continue
        earlier = " ".join(s.text for s in said[max(0, n - 2):n] if s.turn == t.turn)  # what a pronoun may name
        if not earlier and _PERSON_FIRST.match(LEAD.sub("", t.text)):  # "Her husband Piet ..." opening a turn:
            earlier = " ".join([s.text for s in said[:n] if s.role == t.role and s.turn >= t.turn - 2][-2:])
        for sentence in _statements(t.text):
            tokens = sentence.split()
            own = set(values) & words(sentence)
            if own:  # a value that only names the subject ("Dunka Lodun works as a clockmaker"): cut at the rest
                starts = [s for s in _last_runs(sentence, own) if s] or value_runs(
                    sentence, set(distinctive(sorted(words(sentence) - own), episode_id, told_by_id)))[:3]
            elif values:  # the episode tells values, this sentence none: small talk
                continue
            else:  # each run of words no other episode says may be the value: "I'm allergic to cashews, so ..."
                starts = value_runs(sentence, set(distinctive(sorted(words(sentence)), episode_id, told_by_id)))[:3]
            for start in starts:
                if not start or _continues(tokens, start) or tokens[start].lower() in ADVERBS:
                    continue  # "My favourite colour has always been teal": no value starts at "always"
                while start and (tokens[start - 1] in _TITLES or tokens[start - 1] == "The" and start > 1 or
                                 tokens[start - 1] == "the" and start > 1 and tokens[start - 2] in ("called", "named")):
                    start -= 1  # "a teacher called Ms. Arvel", "a band called The Low Tides": the title is the name's
                if start and not _REPLACED.search(" ".join(tokens[:start])):  # a title may have moved it to 0
                    asked = statement_questions(" ".join(tokens[:start]), earlier)
                    asked += named_thing_questions(tokens[:start])
                    asked += owned_kind_questions(tokens[:start])
                    if noun := _kind_after(tokens, start):  # "I take the 7:40 train": which train
                        asked = [f"Which {noun} {q[5:]}" for q in asked if q.startswith("What ")]
                    elif is_date(tokens, start):  # a date is no kind of thing one has ("My birthday is the")
                        asked = [q for q in asked if not _HAS_KIND.fullmatch(q)]
                        asked = when_questions(asked) + [q for q in asked if not q.startswith("Where")
                                                         and not q.endswith(" since?")]
                    elif tokens[start] in _TITLES - {"St", "St."}:  # "My doctor is Dr. Fenwick": a person
                        asked = who_questions(asked)
                    elif is_duration(tokens, start):  # "learning the oboe for two years": how long
                        asked = how_long_questions(asked)
                    elif NUMBER.fullmatch(tokens[start].strip(".,!")):  # "My grandmother turned 90", "I'm 34,"
                        asked = age_questions(tokens[:start], asked)
                    elif tokens[start][:1].isupper() and _PRONOUN_IS.search(" ".join(tokens[:start])):
                        # "We renamed the dog, he's Rufus now": what it is called
                        asked += [f"{m[1]} called?" for q in asked if (m := _OWN_THING.fullmatch(q))]
                    if (stopped := _STOPPED.search(" ".join(tokens[:start]))) and stopped["verb"] not in _NOT_DOING:
                        # "I don't drive the Gorvos anymore, I got a Pelta": the new value is what I drive now
                        who, verb = "I" if stopped["who"].lower() == "i" else "we", stopped["verb"].lower()
                        asked.append(f"{'Where' if stopped['at'] else 'What'} do {who} {verb}?")
                    out += asked + [p for q in asked for p in asked_otherwise(q)]
    return list(dict.fromkeys(out))


# what a renaming asks of the thing it renamed: "What is our dog?", "What is Nils Varga's dog?" (", it's")
_OWN_THING = re.compile(r"(What is (?:my|our|(?:[A-Z][\w-]+ )*[A-Z][\w-]+'s) \w+)\?")
# what `predicates.kind_questions` asks of "my car is a": "What (kind of) car do I have?"
_HAS_KIND = re.compile(r"What (?:kind of )?[\w' -]+ (?:do|does) [\w' -]+ have\?")


# a new clause with its own subject after "; " or ", and" / ", but": "my cousin lives in Dunmore, and my aunt
# moved to Kestwick" tells two facts, each cut at its own values, as does "Kaspar is moving to Yelbridge, and
# Annika's off to Droverton" ("Me and my wife" and "X and Y are" stay whole)
_NEW_SUBJECT = re.compile(r";\s+|,\s+(?:and|but)\s+(?=(?:my|our|his|her|their|I|we|he|she)\b|[A-Z][\w'-]+\s+[A-Z]|"
                          rf"[A-Z][\w-]+(?:'s|\s+(?:just\s+|finally\s+|also\s+)?(?:is|works|lives|{'|'.join(sorted(PAST))}|"
                          r"[a-z]{3,}ed)\b))")  # "Hollis met his wife Pia ..., and Everett met his husband Joaquin"


def _statements(text: str) -> list[str]:
    """The statements a told text makes: its sentences; a question states nothing, but "Did I tell you my
    niece got into X?" and "My sister works at X, right?" tell."""
    out = []
    for sentence in sentences(text):
        if sentence.endswith("?"):
            sentence = LEAD.sub("", sentence)  # "Just so you know, did I tell you ...?"
            # "Work was mad, the car broke down, and oh, did I mention my aunt Bev moved to Kilrush?"
            sentence = next((rest for m in re.finditer(r",\s+", sentence)
                             if TELLING_QUESTION.match(rest := LEAD.sub("", sentence[m.end():]))), sentence)
            if tag := TAG_QUESTION.search(sentence):  # "Quick one: I told you my sister works at X, right?"
                sentence = sentence[:tag.start()] + "."
                if telling := TELLING_QUESTION.match(sentence):
                    sentence = sentence[telling.end():].strip()
            elif fact := TOLD_THEN_ASKED.match(sentence):  # "My son turns eight on Saturday, what cake ...?"
                sentence = fact["told"] + "."
            elif not (telling := TELLING_QUESTION.match(sentence)) or not sentence[telling.end():].strip(" ?"):
                continue
            else:
                sentence = sentence[telling.end():].strip(" ?") + "."
        out.append(sentence)
    return out


def _kind_after(tokens: Sequence[str], start: int) -> str | None:
    """The kind a one-word value, a number or a name, names after an article ("the 7:40 train", "the Kestrel
    hotel": train, hotel), which the question asks by; None when the value is no such word."""
    value = tokens[start]
    if start + 1 >= len(tokens) or tokens[start - 1].lower() not in ("the", "a", "an") or value.isalpha() and \
            value.islower():  # "a lighthouse keeper", "a half marathon": one thing, the job or the race
        return None
    noun = tokens[start + 1].rstrip(".,!;:")
    head = noun != tokens[start + 1] or start + 2 >= len(tokens) or tokens[start + 2].lower() in STOPWORDS
    # the noun ends the thing: "the Abobr half marathon" is no half
    return noun if head and noun.isalpha() and noun.islower() and noun not in STOPWORDS | PHRASE_END else None


def _continues(tokens: Sequence[str], start: int) -> bool:
    """Whether the value at `tokens[start]` (not the first) goes on from what is before it rather than
    starting one: the month of "the 14th of June" (asked at 14th), a name's last word after "of" ("the
    University of Harlow"), or an owner after a comma ("I was wrong,
    Dara Vell's dog ...": Dara is the next clause's subject, no object of "I was wrong")."""
    after_date = start > 1 and tokens[start - 1] == "of" and DATE.match(tokens[start - 2])
    in_name = start > 1 and tokens[start - 1] == "of" and tokens[start - 2][:1].isupper()  # "University of Harlow"
    return bool(after_date or in_name or tokens[start - 1][-1:] in ",:;" and any(w.endswith("'s") and w[:1].isupper()
                                                                  for w in tokens[start:start + 3]))


def _last_runs(sentence: str, own: set[str]) -> list[int]:
    """Where a sentence's values begin that its questions are cut at: the last two runs of `own` words in
    each of its clauses with a subject of their own (`_NEW_SUBJECT`), so "my cousin Rafe lives in Dunmore,
    and my aunt Lil moved to Kestwick" is asked at Dunmore too, and "my birthday is on the 14th of March, not
    the 12th" at the 14th. The prefix before a cut stays the whole
    sentence's: `statement_questions` reads the clause it ends in."""
    bounds = [len(sentence[:m.start()].split()) for m in _NEW_SUBJECT.finditer(sentence)] + [len(sentence.split())]
    tokens = sentence.split()
    # a run that goes on from a date ("the 14th of March") or names what no longer holds ("not the 12th") is
    # never cut at, so it does not take one of the two places
    runs = [r for r in value_runs(sentence, own) if not (r and (
        _continues(tokens, r) or _REPLACED.search(" ".join(tokens[:r]))))]
    start = 0
    out = []
    for end in bounds:
        out += [r for r in runs if start <= r < end][-2:]
        start = end
    return out


# what the user no longer does, before a clause that tells what they do now (live and work: `frames`)
_STOPPED = re.compile(r"\b(?P<who>I|we)\s+(?:don't|do\s+not|no\s+longer)\s+(?P<verb>[a-z]+)\b"
                      r"(?P<at>\s+(?:at|in)\b)?[^,;.]*\b(?:anymore|any\s+more)[,;.]?\s+\S", re.IGNORECASE)
_NOT_DOING = {"know", "think", "like", "want", "need", "have", "live", "work", "care", "mind", "remember", "feel"}
_PRONOUN_IS = re.compile(r"\b(?:he|she|it)(?:'s|\s+is)\s*$", re.IGNORECASE)
_PERSON_FIRST = re.compile(r"(?:he|she|his|her|they|their)\b", re.IGNORECASE)
_TITLES = {title + stop for title in TITLES for stop in ("", ".")}
# a value told as what something no longer is: "at Pellix instead of Dorvan", "moved from Ettgor to Shiten",
# "no longer lives in Vesk" ask nothing about Dorvan, Ettgor or Vesk
_REPLACED = re.compile(rf"\b(?:instead of|rather than|not|{CHANGE_VERBS}(?: \w+)? from|no longer(?: \S+){{1,3}})"
                       r"(?: the| a| an| my| our)?\s*$", re.IGNORECASE)  # "switched from the trumpet"


def named_thing_questions(before: Sequence[str]) -> list[str]:
    """"What is X's band called?" when the words before a value are someone's thing: a capitalised
    possessor and one or two lower-case nouns ("Obrmub Mubkedjan's band" before "Cavyar")."""
    thing: list[str] = []
    for token in reversed(before):
        if token[:1].islower() and token.isalpha() and len(thing) < 2 and token not in STOPWORDS | PHRASE_END:
            thing.insert(0, token)
            continue
        break
    rest = list(before[:len(before) - len(thing)])
    if not thing or not rest or not rest[-1].endswith("'s") or not rest[-1][:1].isupper():
        return []
    owner = [rest.pop()]
    while rest and rest[-1][:1].isupper() and rest[-1].isalpha() and len(owner) < 3:
        owner.insert(0, rest.pop())
    return [f"What is {' '.join(owner)} {' '.join(thing)} called?"]


# "my teacher is a guy called Benedek" tells of no guy of mine
_SOMEBODY = {"guy", "man", "woman", "girl", "boy", "lady", "chap", "bloke", "person", "fellow"}
# the prepositions before a kind that is no thing of the user's: "learning from a YouTuber called" (where one
# works "at a firm called" is "my firm")
_NOT_OWNED = {"from", "by", "about"}
_FIRST_PERSON = {"i": "my", "i've": "my", "i'm": "my", "we": "our", "we've": "our", "we're": "our"}


def owned_kind_questions(before: Sequence[str]) -> list[str]:
    """"What is my cat called?" where the user tells a thing of theirs by its kind and name ("I have a cat
    named", "We adopted a rescue dog called"): the kind is the last one or two lower-case words between the
    article and "called"/"named", less adjectives; the owner is the sentence's first word, I or we ("Me and
    my partner", "My wife and I": we)."""
    said = [t.lower().strip(",") for t in LEAD.sub("", " ".join(before)).split()]
    if said[:3] in (["me", "and", "my"], ["me", "and", "our"]):  # "Me and my partner adopted a rabbit called"
        said = ["we"] + said[3:]
    elif "i" in said[2:5] and said[said.index("i", 2) - 1] == "and":  # "My wife and I adopted": ours
        said = ["we"] + said[said.index("i", 2) + 1:]
    if len(said) < 4 or said[-1] not in ("called", "named") or said[0] not in _FIRST_PERSON:
        return []
    article = max((i for i, w in enumerate(said[:-1]) if w in ("a", "an")), default=len(said))
    if 0 < article < len(said) and said[article - 1] in _NOT_OWNED:  # "learning from a YouTuber called": not mine
        return []
    kind = [w for w in said[article + 1:-1] if w not in ADJECTIVES][-2:]
    if not kind or kind[-1] in _SOMEBODY or not all(w.isalpha() and w not in STOPWORDS | PHRASE_END for w in kind):
        return []
    thing = f"{_FIRST_PERSON[said[0]]} {' '.join(kind)}"
    return [f"What is {thing} called?", f"What is the name of {thing}?"]
