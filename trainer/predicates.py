"""What follows a statement's verb up to its value, turned into the question's words: "lives in a town called"
-> "Which town does X live in?", "is from" -> "Where is X from?", "my car is a" -> also "What car do I have?".
`trainer.statements` finds the subject and the verb; English word order, no relation read."""

from __future__ import annotations

import re

from trainer.text import owner_lower

ARTICLES = {"a", "an", "the"}
PLACE = {"in", "at", "near", "on", "from", "to"}
# whoever a fact names as "someone called X" is asked after with who
_SOMEONE = {"someone", "somebody", "a guy", "a man", "a woman", "a girl", "a boy", "a friend"}


def copula_questions(low: str, subject: str, rest: list[str]) -> list[str]:
    """The questions of "<subject> is/was ... <value>": "Where is X from?" for a place, "Who is my landlord?"
    for someone named, "Which potter is X married to?", else "What is X ...?"."""
    if len(rest) in (2, 3) and rest[0] in ("my", "our") and all(w.isalpha() for w in rest[1:]) and subject not in (
            "I", "we"):  # "the drummer is my cousin Fenna": who the drummer is
        return [f"Who {low} {subject}?"]
    while rest and rest[-1] in ("every", "each"):  # "My yoga class is every Wednesday": when, not "every"
        rest = rest[:-1]
    if rest[-1:] in (["my"], ["our"]):  # "My favourite food is my nan's hotpot": what it is, not "food my"
        rest = rest[:-1]
    if rest == ["off", "to"]:  # "I'm off to Lisbon": where I'm going
        return [f"Where {low} {subject} off to?", f"Where {low} {subject} going?"]
    if rest and rest[-1] in PLACE:
        rest = _without_particle(rest)
        place = rest if rest[-1] == "from" else rest[:-1]  # "Where is my mother from?"
        where = [] if rest[-1] == "to" else [f"Where {low} {subject} {' '.join(place)}".rstrip() + "?"]
        what = [] if rest[-1] == "from" else [f"What {low} {subject} {' '.join(rest)}?"]
        return where + what  # "allergic to" is no place, "from" a place only
    if (named := _NAMED.fullmatch(" ".join(rest))) and named["who"]:  # "is married to someone called"
        who = " ".join(f"Who {low} {subject} {named['obj']} {named['prep'] or ''}".split()) + "?"
        plain = not named["obj"].strip() and not named["prep"] and subject.split()[0] in ("my", "our", "the")
        return [who] + ([f"What {low} {owner_lower(subject)}'s name?"] if plain else [])
    which = [" ".join(f"Which {named['noun']} {low} {subject} {named['obj']} {named['prep']}".split()) + "?"
             ] if named and named["prep"] and (named["obj"].strip() or named["prep"] in PLACE) else []
    if which and not named["obj"].strip():  # "I'm from a village called": also where I am from
        which.append(f"Where {low} {subject}{' from' if named['prep'] == 'from' else ''}?")
    if re.fullmatch(r"(?:a|an|the) (?:\w+ )*\w+ (?:called|named)", " ".join(rest)):  # "is a stew called"
        return [f"What {low} {subject}?"] + which
    if which:
        return which
    asked = _without_describing(rest)
    kind = kind_questions(subject) if rest and low in ("is", "are") and not asked else []  # "my car is a"
    return [f"What {low} {subject} {' '.join(asked)}".rstrip() + "?"] + kind


# whose thing a subject names, and how a question about having it is asked: "my car" -> "do I have"
_HAVER = {"my": "do I", "our": "do we"}


def kind_questions(subject: str) -> list[str]:
    """"my car is a Corab" is also asked as what one has: "What kind of car do I have?", "What car do I
    have?" ("Bera Kolst's car" -> "does Bera Kolst have"). Only a subject that says whose thing it is."""
    owner, _, thing = subject.partition(" ")
    if owner.lower() in _HAVER:
        haver = _HAVER[owner.lower()]
    elif owner.endswith("'s") and owner[:1].isupper():  # "Bera's car"; "Bera Kolst's car" below
        haver = f"does {owner[:-2]}"
    else:
        named = re.fullmatch(r"((?:[A-Z][\w-]+ )+?[A-Z][\w-]+)'s (.+)", subject)
        if not named:
            return []
        haver, thing = f"does {named[1]}", named[2]
    thing = re.sub(r"^(?:new|old)\s+", "", thing)  # "What kind of car do we have?" for "Our new car is a"
    if not thing or len(thing.split()) > 3 or thing.startswith(("favourite", "favorite")) or "'s" in thing:
        return []  # a favourite is liked best (`paraphrases.asked_otherwise`), not had; nor a son's birthday
    return [f"What kind of {thing} {haver} have?", f"What {thing} {haver} have?"]


def object_questions(aux: str, subject: str, verb: str, rest: list[str]) -> list[str]:
    """The questions about what follows a verb: "Which town does X live in?" for "lives in a town called",
    "Who ..." for "someone called", "Where ..." for a place, else "What ...?" (what is named kept whole)."""
    named = _NAMED.fullmatch(" ".join(rest))
    if named:
        ask = "Who" if named["who"] else f"Which {named['noun']}"
        head = f"{aux} {subject} {verb}" + (f" {named['obj'].strip()}" if named["obj"] else "")
        prep = f" {named['prep']}" if named["prep"] else ""
        out = [f"{ask} {head}{prep}?"]
        return out + ([f"Where {head}?"] if named["prep"] in PLACE and not named["who"] else [])
    naming = {verb.split()[-1], *rest} & {"call", "calling", "called", "name", "naming", "named", "nicknamed"}
    if rest and rest[-1] in ("my", "our", "his", "her", "their"):  # "I sold my Gorvos": what I sold, not "sell my"
        rest = rest[:-1]
    if len(rest) >= 2 and rest[-2] in ("my", "our") and not naming:  # "I've had my cat Tibbles": the cat's name
        return [f"What is {rest[-2]} {rest[-1]} called?"]
    if len(rest) >= 2 and rest[-2] in ("his", "her", "their") and not naming and _NAME.fullmatch(subject):
        # "Hollis met his wife Pia": Hollis's wife's name ("What did Hollis meet his wife?" before)
        return [f"What is {subject}'s {rest[-1]} called?", f"Who is {subject}'s {rest[-1]}?"]
    if not naming:  # "call the baby": it is named
        rest = _without_describing(rest)
    if rest[-1:] in (["and"], ["or"]):  # "I speak Dutch and a little Farsi": the value is one of a list
        return []
    while rest and rest[-1] in ("every", "each", "this", "next", "last"):  # "I play badminton every Tuesday"
        rest = rest[:-1]
    if rest and rest[-1] in PLACE:  # "lives in" asks where, "ends in" asks what: ask both
        rest = _without_particle(rest)
        return [f"Where {aux} {subject} {' '.join([verb] + rest[:-1])}?",
                f"What {aux} {subject} {' '.join([verb] + rest)}?"]
    return [f"What {aux} {subject} {verb} {' '.join(rest)}".rstrip() + "?"]


# a subject that is someone named: "Hollis", "Rufus Tarrow"
_NAME = re.compile(r"(?:[A-Z][\w-]+ )*[A-Z][\w-]+")


def _without_particle(rest: list[str]) -> list[str]:
    """"lives over in" -> "lives in", "moved back to" -> "moved to": the adverb before a place's preposition
    is not part of the question ("Where does my sister live?")."""
    while len(rest) >= 2 and rest[-2] in ("over", "back", "right", "away"):  # not "grew up in": its verb
        rest = rest[:-2] + rest[-1:]
    return rest


def _without_describing(rest: list[str]) -> list[str]:
    """What follows a verb less the article and words that describe the value about to be named ("I drive
    a blue" -> "I drive"): the question asks for the whole thing. A preposition after the article keeps
    them ("got a new job at" asks where)."""
    articles = [i for i, t in enumerate(rest) if t in ARTICLES]
    if articles and not set(rest[articles[-1]:]) & PREPOSITIONS:
        return rest[:articles[-1]]
    return rest


# the prepositions between a verb and the kind of thing a value names ("lives in a town called")
_NAMING_PREPOSITIONS = "in|at|from|with|for|on|to|by|into"
PREPOSITIONS = {*_NAMING_PREPOSITIONS.split("|"), "of", "about"}


# what follows a verb up to a value it names: "(violin lessons) (from) a (teacher) named", "(in) a (town) called"
_NAMED = re.compile(rf"(?P<obj>(?:\S+ )*?)(?:(?P<prep>{_NAMING_PREPOSITIONS}) )?"
                    rf"(?:(?P<who>{'|'.join(sorted(_SOMEONE, key=len, reverse=True))})|"
                    rf"(?:a|an|the) (?:(?!(?:{_NAMING_PREPOSITIONS}|a|an|the) )\S+ )*?(?P<noun>\S+))"
                    rf" (?:called|named)")
