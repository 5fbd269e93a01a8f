"""What a pronoun names: the thing or person of the user's that the words just before it told of. "I finally
adopted a rabbit! His name is" asks about "my rabbit"; "my aunt moved, she lives in" about "my aunt". English
word order, no model; `trainer.statements` turns the sentence with the pronoun replaced.
"""

from __future__ import annotations

import re

from trainer.questions import PLACE_BEFORE_MINE, handles
from trainer.text import STOPWORDS, entities

# words that describe a kind rather than name it: "a lovely old dog" is a dog
ADJECTIVES = set("new old little small tiny big huge lovely local young cute sweet good nice cosy quiet".split())
# words after a kind that end it: "a kitten yesterday", "a puppy last week"
_WHEN = {"last", "next", "yesterday", "today", "tonight", "recently", "this"}
# the user telling of a thing or someone of theirs by its kind: "I finally adopted a rabbit", "We have a baby girl"
# someone named telling of theirs the same way: "Lunara Vex has a parrot" is Lunara Vex's parrot
# and the user's people: "my best mate finally bought a house. It's in" is my best mate's house
_WHO = r"(?P<who>I|we|(?-i:(?:[A-Z][\w-]+ )*[A-Z][\w-]+|(?:[Mm]y|[Oo]ur) [a-z]+(?: [a-z]+)?))"
_OWNING = re.compile(rf"\b{_WHO}(?:'ve| have| has| just| finally| recently)* (?:got|adopted|bought|rescued|have|"
                     r"has|found|welcomed|brought home|picked up|had|started|opened|booked) (?:a|an) "
                     r"(?P<kind>(?-i:[a-zà-ÿ]+(?: [a-zà-ÿ]+){0,2}))\b", re.IGNORECASE)
# a thing told as there: "There's a new café on our street. It's called" is the café
_THERE_IS = re.compile(r"\bthere(?:'s| is) (?:a|an) (?P<kind>(?-i:[a-zà-ÿ]+(?: [a-zà-ÿ]+){0,2}))\b", re.IGNORECASE)
# "a" after "he's"/"it is" says what the thing told is, and introduces nothing new: "We got a puppy! He's a
# spaniel and we named him" is our puppy
_DESCRIBED = re.compile(r"\b(?:he|she|it|they)(?:'s| is|'re| are)\s+$", re.IGNORECASE)
# or named or changed by them: "We renamed the dog, he's Rufus now" is our dog, "I changed the wifi password,
# it's now" ours
_RENAMED = re.compile(rf"\b{_WHO}(?:'ve| have| has| just| finally)* "
                      r"(?:renamed|named|nicknamed|changed|reset|updated) "
                      r"(?:the|his|her|their) (?P<kind>(?-i:[a-zà-ÿ]+(?: [a-zà-ÿ]+)?))\b", re.IGNORECASE)
_MINE = re.compile(r"\b(?:my|our)\s+[a-z]", re.IGNORECASE)
_PLACE_BEFORE = re.compile(rf"{PLACE_BEFORE_MINE}$", re.IGNORECASE)
# a new thing told bare before what it is: "New phone number, it ends in 9023 now."
_NEW_THING = re.compile(r"new\s+(?P<kind>[a-z]+(?:\s+[a-z]+)?)\s*[,:]", re.IGNORECASE)
# "a" before an amount or a stretch of time introduces no thing: "thinking about my grandad a lot. He"
_AMOUNTS = {"lot", "bit", "while", "few", "couple", "little", "week", "day", "month", "year", "moment", "minute"}
# things no "he" or "she" stands for: "my sister got a new job, she's at" is my sister
_NO_ONE = {"job", "new job", "promotion", "raise", "degree", "place", "flat", "house", "apartment", "car", "role",
           "position", "contract", "offer", "job offer", "lot", "chance", "break", "course"}
# and what no name is given to ("Tev got a job, and his girlfriend"; not "Aurelio got a new car, it's a Mistral")
_NOTHING_NAMED = _NO_ONE - {"car", "flat", "house", "apartment", "place"}
_INTRODUCED = re.compile(rf"\b(?:a|an)\s+(?!(?:{'|'.join(sorted(_AMOUNTS))})\b)((?:[a-zà-ÿ]+\s+){{0,2}}[a-zà-ÿ]+)\b")


def kind_of(words: str) -> str:
    """The kind a few words after "a"/"an" name, less describing words and what follows it: "new baby girl
    last week" -> "baby girl"; "" when none."""
    kind: list[str] = []
    for word in words.lower().split():
        if word in ADJECTIVES:
            continue
        if word in STOPWORDS or word in _WHEN:
            break
        kind.append(word)
    return " ".join(kind[-2:])


def last_object(text: str) -> str | None:
    """The last thing a text introduced with a/an ("had a baby girl" -> "baby girl")."""
    found = [kind for m in _INTRODUCED.finditer(text) if (kind := kind_of(m[1]))]
    return found[-1] if found else None


def owner_of(who: str) -> str:
    """How a question says whose thing it is: "I" -> "my", "we" -> "our", "Lunara Vex" -> "Lunara Vex's"."""
    if who.lower() in ("i", "we"):
        return {"i": "my", "we": "our"}[who.lower()]
    if who.lower().startswith(("my ", "our ")):  # "my best mate" -> "my best mate's"
        return f"{who[0].lower()}{who[1:]}'s"
    named = entities(who, 1)  # "Yesterday Ruben": Ruben's
    return f"{named[0] if named else who}'s"


def antecedent(text: str, person: bool = False) -> str | None:
    """The thing the text tells of last, as a question names it: what the user, someone named or one of the
    user's people told they have ("I got a puppy last week" -> "my puppy", "Lunara Vex has a parrot" ->
    "Lunara Vex's parrot", "my best mate bought a house" -> "my best mate's house"), a thing told as there
    ("There's a new café" -> "the café"), or the user's named as theirs ("I finally met my neighbour" -> "my
    neighbour"; not after a place's preposition: "into our garden"). None when none, or when something else is
    introduced after it ("He's a spaniel" introduces nothing). `person`: the pronoun is he or she, which no
    job or flat stands for ("my sister got a new job, she's at" is my sister's)."""
    best, at = None, -1
    if new := _NEW_THING.match(text.strip()):  # "New phone number, it ends in": the user's
        best, at = f"my {new['kind'].lower()}", new.end()
    for m in _THERE_IS.finditer(text):
        if kind := kind_of(m["kind"]):
            best, at = f"the {kind}", m.end()
    for m in sorted([*_OWNING.finditer(text), *_RENAMED.finditer(text)], key=lambda m: m.start()):
        # someone named's job or flat is what they got, no one a pronoun after it is about: "Tev got a job, and his"
        if (kind := kind_of(m["kind"])) and not (m["who"].lower() not in ("i", "we") and kind in _NOTHING_NAMED) \
                and not (person and kind in _NO_ONE):
            best, at = f"{owner_of(m['who'])} {kind}", m.end()
    for m in _MINE.finditer(text):
        if _PLACE_BEFORE.search(text[:m.start()]):
            continue  # "My neighbour's cat keeps getting into our garden. Its name is": the cat's, no garden's
        if m.start() > at and (named := handles(text[m.start():])):
            best, at = named[0].lower(), m.end()
    if best is None or any(m.start() > at and not (person and kind_of(m[1]) in _NO_ONE)
                           and not _DESCRIBED.search(text[:m.start()]) for m in _INTRODUCED.finditer(text)):
        return None
    return best


# the words that tell a name is a man's or a woman's: "a guy called Ruben", "my sister Tova", "Mrs Ofori"
_MEN = "guy|man|boy|bloke|chap|husband|boyfriend|brother|son|dad|father|uncle|nephew|grandson|grandad|mr"
_WOMEN = "woman|girl|lady|wife|girlfriend|sister|daughter|mum|mom|mother|aunt|niece|granddaughter|grandma|mrs|ms|miss"


def _at_place(name: str) -> re.Pattern:
    """A name after a place's preposition, or after a verb whose object is a firm or a thing, never a person
    ("Lysa Crane quit Harbinger Books, she's at" is Lysa's): nobody a pronoun stands for."""
    return re.compile(rf"\b(?:in|at|from|near|into|quit|left|joined|sold|cancell?ed|founded)\s+(?:the\s+)?"
                      rf"{re.escape(name)}\b")


def pronoun_named(pronoun: str, before: str, earlier: str) -> str | None:
    """Who or what a vague subject names: he/she/they the last name before it (in this sentence, or the
    one before when that sentence starts with it: "Kesta Varn got a job. She works at"), else the user's
    thing told just before ("I got a puppy last week. She's called"); "it" never a name ("my boss isn't
    Reuben now, it's" names the boss). None when nothing fits ("this", "there"). `earlier`: the sentences
    before, less their lead-in ("Oh, and")."""
    named = [] if pronoun in ("it", "this", "that", "there") else entities(before, 8) or [
        n for n in entities(earlier, 8) if earlier.startswith(n) and pronoun != "they"]
    named = [n for n in named if not _at_place(n).search(before)]  # nobody (`person_named`)
    person = pronoun in ("he", "she")
    if not named and pronoun in ("he", "she", "it", "they") and (owned := antecedent(f"{earlier} {before}", person)):
        named = [owned]
    return person_named(named, before, pronoun) if named else None


def person_named(named: list[str], before: str, pronoun: str = "") -> str | None:
    """Who a pronoun names among the names before it: the last one told, people ("Tenett Mirbel") over
    single words ("Gorbel"); for she/her or he/his, not someone the words before their name tell is a man or
    a woman ("Tova got engaged to a guy called Ruben, and her brother" is Tova's)."""
    # a place or a firm is nobody: "My sister doesn't live in Carlisle anymore, she moved to" is my sister's,
    # "Tev got a job at Farnwick Labs, and his girlfriend" Tev's
    named = [n for n in named if not _at_place(n).search(before)]
    other = _MEN if pronoun in ("she", "her") else _WOMEN if pronoun in ("he", "his", "him") else None
    if other:
        named = [n for n in named if not re.search(rf"\b(?:{other})\.?\s+(?:(?:called|named)\s+)?{re.escape(n)}\b",
                                                   before, re.IGNORECASE)] or named
    people = [n for n in named if len(n.split()) > 1] or named
    return max(people, key=lambda n: before.rfind(n)) if people else None
