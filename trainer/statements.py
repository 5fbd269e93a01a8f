"""What a user said, turned into the question it answers: a statement cut where its value begins ("I work at
Lobel" -> "Where do I work?"); what the user asked the assistant to decide is `trainer.decisions`. English
word order, no relation and no model: the in-context teacher answers the questions (`trainer.dreaming`).
Verb forms are `trainer.verbs`; who a pronoun names ("His name is", after "I adopted a rabbit!"),
`trainer.pronouns`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from trainer.episodes import TELLING_QUESTION
from trainer.frames import framed_questions
from trainer.paraphrases import NUMBER
from trainer.predicates import ARTICLES, PREPOSITIONS, copula_questions, kind_questions, object_questions
from trainer.pronouns import antecedent, last_object, person_named, pronoun_named
from trainer.text import FROM_BEFORE_TO, STOPWORDS, entities, owner_lower, words
from trainer.verbs import ADVERBS, HAVE, PAST, base, expand, is_verb, participle

LEAD = re.compile(r"^(?:(?:by the way|btw|fyi|quick update|quick (?:one|question)|update on [^:]+|oh|also|actually|"
                   r"so|well|anyway|okay|ok|"
                   r"fun fact|guess what|just so you know|you know what|news|and|but|(?:it )?turns out(?: that)?|"
                   r"funny enough|believe it or not|long story short|honestly|heads up|for the record|at least|"
                   r"yeah|so yeah|random(?: thing| question| fact)?,? but|omg|haha+|lol|ugh|hey|hi|"
                   # a correction's own opening: "Actually, I got that wrong earlier - my sister lives in"
                   r"sorry|oops|correction|scratch that|wait(?:,? no)?|my (?:mistake|bad)|i misspoke|"
                   r"i (?:got|had) (?:that|it) wrong(?: earlier| before)?|i was wrong(?: earlier| before)?|"
                   r"let me correct (?:myself|that)|(?:just )?to correct (?:myself|what i said))"
                   r"(?:\s+[-\u2013\u2014]+\s+|[:,!]?\s+))+",
                   re.IGNORECASE)
_PRONOUNS = {"i": "do", "we": "do", "you": "do", "they": "do"}
# the pronouns that can start a clause of their own ("... but I switched to", "Since my dad retired he lives in")
_SUBJECTS = {*_PRONOUNS, "he", "she"}
# the verbs that give a thing of one's a new value: "I changed the wifi password to", "We reset our PIN to"
_SET_TO = {"change", "reset", "update", "set"}
_VAGUE = {"he", "she", "it", "they", "this", "that", "there"}
# "everyone calls me Tiko" names what everyone does; "someone said" names nothing
_NOBODY = {"nothing", "everything", "something", "anything", "nobody", "someone", "anyone"}
# a negated verb tells no value: "My dog isn't called Dunshi anymore" (its new name comes after)
_NEGATED = {"isn't", "wasn't", "aren't", "weren't", "doesn't", "don't", "didn't", "not", "no"}
# what the user says of their own words is no fact: "I said Ralda earlier but I meant Rilda"
_OWN_WORDS = {"meant", "mean", "said", "say", "misspelled", "misspelt", "misspoke", "typed"}
# a past that opens a sentence with its "I" left out: "Had coffee with two old friends today", "Got a new job"
_ELIDED_I = {"had", "got", "went", "met", "saw", "bought", "started", "moved", "visited", "finished", "joined"}
# a relative clause's verb is not the sentence's: "The plumber who fixed our sink was called"
_RELATIVE = {"who", "that", "which", "whose"}
# a subject's first word that is lower-cased inside a question: "What is her tutor?"
_MINE = {"my", "our", "his", "her", "their", "your"}
_OWNERS = {"my", "our", "his", "her", "their", "the", "a", "everyone", "everybody", "people"}
_COPULA = {"is", "are", "was", "were", "am"}
_MODAL = {"might", "may", "will", "would", "can", "could", "should", "must", "shall", "'m", "think", "guess",
          "can't", "cannot", "won't", "don't", "didn't", "wouldn't", "couldn't"}  # a negation tells no value
_WISH = {"want", "wanted", "need", "needed", "hope", "plan", "planned", "love", "like", "try", "tried", "going"}


# the words after which a new clause, with its own subject, can begin
_CLAUSE_START = {"and", "but", "so", "because", "since", "cause", "'cause", "as", "when", "while", "although",
                 "though", "whereas"}


def _last_clause(before: str, tokens: list[str]) -> tuple[str, list[str]]:
    """The clause the value ends, and what came before it: "I used to work at Vintrel but I switched to" ->
    "I switched to", "I speak Portuguese because my mother is from" -> "my mother is from" (a conjunction
    and a new subject; "Me and my wife got" is one subject), "When I moved I bought a house in" -> "I bought
    a house in" (the main clause after a leading subordinate one), "Because my mum is from" -> "my mum is
    from"."""
    restart = [i for i, t in enumerate(tokens[:-2]) if i and t.lower() in _CLAUSE_START
               and _starts_clause(tokens[i + 1:]) and _verb_at(tokens[:i])]
    if restart:
        return f"{before} {' '.join(tokens[:restart[-1]])}", tokens[restart[-1] + 1:]
    if len(tokens) > 2 and tokens[0].lower() in _CLAUSE_START:
        main = [j for j in range(2, len(tokens) - 1) if tokens[j].lower() in _SUBJECTS]
        cut = main[-1] if main else 1
        return f"{before} {' '.join(tokens[:cut])}", tokens[cut:]
    return before, tokens


def _starts_clause(tokens: Sequence[str]) -> bool:
    """Whether the words begin a clause with its own subject: a pronoun ("I", "she"), or someone's thing
    followed by a verb ("my mother is from")."""
    first = tokens[0].lower()
    if first in _SUBJECTS:
        return True
    return first in ("my", "our", "his", "her", "their") and _verb_at(tokens) is not None


def _verb_at(tokens: Sequence[str]) -> int | None:
    """Where the sentence's verb is: right after a pronoun subject, else the first copula or
    third-person/past verb after the subject."""
    if tokens[0].lower() in _PRONOUNS:
        wish = tokens[2:] == ["to"] and tokens[1].lower() in _WISH  # "I want to": its value is a verb, not a thing
        return 1 if len(tokens) > 1 and tokens[1].lower() not in _MODAL and not wish else None
    if [t.lower() for t in tokens[:3]] in (["me", "and", "my"], ["me", "and", "our"]):  # "Me and my brother run"
        at = 4 + (len(tokens) > 5 and tokens[4][:1].isupper())  # "Me and my partner Devi adopted"
        return at if len(tokens) > at and tokens[at].lower() not in _MODAL else None
    relative = False
    for i, token in enumerate(tokens[1:], 1):
        low = token.lower()
        if low in ("i", "me") and tokens[i - 1].lower() == "and":  # "My wife and I run": the verb is next
            return i + 1 if i + 1 < len(tokens) and tokens[i + 1].lower() not in _MODAL else None
        if low in _RELATIVE:
            relative = True
            continue
        if tokens[i - 1].lower() in _MINE | ARTICLES and low not in _COPULA:  # "My kids are", "The kids have": a noun
            continue
        plural = i > 1 and tokens[i - 2].lower() in _MINE and re.search(r"[^'s]s$", tokens[i - 1])
        if plural and token.islower() and (low in ("go", "do", "have") or low not in STOPWORDS and is_verb(low + "s")):
            return i  # "My parents live in": a plural's bare verb
        # "the Ardens next door have": a plural's "have"
        verb = low in _COPULA or low in ("has", "had") or is_verb(token) or low == "have" and tokens[0].lower() == "the"
        if verb and relative:  # the relative clause's own verb: the sentence's comes after it
            relative = False
        elif verb:
            return i
    return None


def _lower(token: str) -> str:
    """A word as a question repeats it: lower-cased unless it is a name ("Fyrull" stays)."""
    return token if token[:1].isupper() and token.lower() not in _PRONOUNS else token.lower()


# the words that open a clause of its own: a value never follows them ("What am I allergic to hazelnuts so?")
_CLAUSE_JOINS = {"so", "but", "because", "cos", "though", "although"}


def statement_questions(prefix: str, earlier: str = "") -> list[str]:
    """The questions whose answer is what a statement says after `prefix` (the statement up to its value):
    "I work at" -> "Where do I work?", "my dog is called" -> "What is my dog called?", "Kalo Loka's phone
    number ends in" -> "What does Kalo Loka's phone number end in?", "Pavos Katen lives in a town called" ->
    "Which town does Pavos Katen live in?", "I've been learning an old card game called" -> "Which game
    have I been learning?", "Hepev Mubust quit Fyrull and joined" -> "What did Hepev Mubust join?". English
    word order, no relation read; [] when the prefix has no subject and verb it can turn (or its subject is
    a bare pronoun: "she works at" names no one). `earlier`: the sentences the user said just before, where
    a pronoun's thing may be ("I adopted a rabbit!" before "His name is" -> "What is my rabbit's name?")."""
    prefix = FROM_BEFORE_TO.sub("", prefix)  # "X moved from Ettgor to": where X moved
    if prefix.split()[-1:] and prefix.split()[-1].lower() in _CLAUSE_JOINS:
        return []  # "I'm allergic to hazelnuts so": what follows is another clause, no value of this one
    stripped = LEAD.sub("", prefix.strip())
    if (whole := _whole_prefix_questions(prefix, stripped)) is not None:
        return whole
    clauses = re.split(r"[,;:]\s+|\s+[-\u2013\u2014]+\s+", stripped.rstrip(",;:-"))  # "Pesto got renamed - the kids"
    if len(clauses) >= 2 and _SOMEONE_CALLED.fullmatch(clauses[-1]):  # "The new intern, a lad called": who
        np = _noun_phrase(clauses[-2])  # the intern is ("What did a lad call?" before)
        return [f"Who is {np}?", f"What is {np} called?"] if np else []
    tokens = _opening(expand(LEAD.sub("", clauses[-1]).split()), len(clauses))  # "Random thing, but X's husband"
    if not tokens or len(clauses) >= 2 and tokens in (["called"], ["named"]):  # "a food truck now, called": whose?
        return []
    if len(clauses) >= 2 and (is_verb(tokens[0]) or tokens[0] in _COPULA | HAVE):  # "My friend, Ravik, lives in"
        subjects = [c for c in clauses[-3:-1] if c[:1].isupper() or c.lower().split()[:1] in (["my"], ["our"])]
        return list(dict.fromkeys(q for c in reversed(subjects) for q in statement_questions(f"{c} {clauses[-1]}")))
    before = prefix[:prefix.rfind(clauses[-1])]
    before, tokens = _last_clause(before, tokens)
    # "X quit Fyrull and joined": the verb after "and" has the subject before it
    joined = [i for i, t in enumerate(tokens) if t.lower() in ("and", "but") and i + 1 < len(tokens)
              and is_verb(tokens[i + 1])]
    if joined and (first := _verb_at(tokens[:joined[-1]])):
        before, tokens = " ".join(tokens[:joined[-1]]), tokens[:first] + tokens[joined[-1] + 1:]
    tokens = _as_is(tokens)
    if tokens[0].lower() in ("his", "her", "its", "their") and len(tokens) > 1 + (not prefix.rstrip().endswith(",")):
        if not (named := _whose(tokens[0].lower(), before, earlier)):  # "I met a guy. His name is": no one's
            return []
        tokens = [f"{named}'s"] + tokens[1:]  # "I adopted a rabbit! His name is": my rabbit's name
    at = _verb_at(tokens)
    if not at:
        return _verbless_questions(prefix, tokens)
    if at > 1 and tokens[at - 1].lower() in _SUBJECTS and tokens[at - 2].lower() not in ("and", "or"):
        before, tokens, at = f"{before} {' '.join(tokens[:at - 1])}", tokens[at - 1:], 1  # "Over the weekend I saw"
    subject, verb, rest = " ".join(tokens[:at]), tokens[at], [_lower(t) for t in tokens[at + 1:]]
    if (beside := _beside_what_was_said(prefix, tokens[:at + 1], verb, rest)) is not None:
        return beside
    if subject.lower() == "they" and rest[:1] in (["my"], ["our"]):
        subject = "they"  # "They rescheduled my dentist appointment to": no one in particular, my appointment
    elif subject.lower() in _VAGUE:  # "Update on Tenett Mirbel: she works at": she is the last name before
        subject = pronoun_named(subject.lower(), before, LEAD.sub("", TELLING_QUESTION.sub("", earlier).lstrip()))
        if subject is None:
            return []
    subject = _as_asked(subject)
    said = f"{earlier} {before} {' '.join(tokens[:at])}"
    if len(rest) >= 3 and rest[-2:] == ["name", "to"] and base(verb) == "change":  # "we changed his name to"
        owner = " ".join(rest[:-2])
        if owner in ("his", "her", "its", "their"):
            owner = antecedent(said) or ""
        thing = owner_lower(owner[:-2] if owner.endswith("'s") else owner)
        return [f"What is {thing} called?", f"What is {thing} called now?"] if thing else []
    if len(rest) >= 3 and rest[-1] == "to" and rest[0] in ("my", "our", "the") and base(verb) in _SET_TO and \
            subject.lower() in ("i", "we", "they"):  # "I changed the wifi password to": what it is now
        thing = " ".join(rest[:-1])
        return [f"What is {thing}?", f"What is {thing} now?"]
    if rest and rest[-1] in ("it", "her", "him", "them"):  # "We have a baby girl. We named her": our baby girl
        if thing := antecedent(said) or last_object(said[len(earlier) + 1:]):  # "adopted a puppy and named it"
            owner, _, kind = thing.partition("'s ")
            if kind and owner == subject:  # "X adopted a puppy and named it": X's puppy, asked as the puppy too
                return [f"What is {thing} called?", *_verb_questions(verb, subject, rest[:-1] + [f"the {kind}"],
                                                                     words(f"{earlier} {prefix}"))]
            rest[-1] = thing if thing.startswith(("my ", "our ")) or kind else f"the {thing}"
    return _verb_questions(verb, subject, rest, words(f"{earlier} {prefix}"))


def _verb_questions(verb: str, subject: str, rest: list[str], said: set[str]) -> list[str]:
    """The questions of "<subject> <verb> <rest>" where the value follows: a verb group asked whole ("have
    I been learning"), a copula's (`copula_questions`, and a fact its words frame: `frames`), any other
    verb's in its bare form after do/does/did."""
    low = verb.lower()
    if (low in HAVE or low in _COPULA) and rest and participle(rest[0]) and not (low in _COPULA and rest[0] in (
            "born", "married", "called", "named")):
        chain = []  # "I have been learning": the question keeps the whole verb group after its subject
        while rest and rest[0] == "been":
            chain.append(rest.pop(0))
        if rest and participle(rest[0]):
            chain.append(rest.pop(0))
        return object_questions(low, subject, " ".join(chain), rest)
    if low in _COPULA:  # "I changed jobs, I'm at": where I work
        return copula_questions(low, subject, rest) + framed_questions(subject, rest, said)
    past = low in PAST or low.endswith("ed") and not low.endswith("eed") or low in ("agreed", "freed")  # not "need"
    aux = "did" if past else "do" if subject.endswith(" and I") or not low.endswith("s") else _PRONOUNS.get(
        subject.lower(), "does")
    bare = base(verb) if (past or aux == "does") else low
    return object_questions(aux, subject, bare, rest)


def _whole_prefix_questions(prefix: str, stripped: str) -> list[str] | None:
    """The questions a prefix asks as a whole, before its clauses are read: "a name for the cat:", "I have
    two brothers, " (names next), "I met my boss, " (a name next); None when it is no such prefix."""
    if named_for := _NAME_FOR.search(prefix):  # "We settled on a name for the cat:" -> "What is the cat called?"
        thing = owner_lower(named_for["thing"])
        return [f"What is {thing} called?", f"What is the name of {thing}?"]
    if kin := _HAVE_NAMED.search(stripped):  # "I have two brothers, Tam and Ivo": who they are
        kind = f"{'my' if kin['who'].lower() == 'i' else 'our'} {kin['kind'].lower()}"
        if kin["n"].lower() in ("a", "an", "one"):
            return [f"Who is {kind}?", f"What is {kind} called?"]
        return [f"Who are {kind}?", f"What are {kind} called?"]
    if (named_after := _APPOSITIVE.search(stripped)) and named_after.start() > 0:  # "I met my boss, X,": who
        np = named_after["np"].lower()
        return [f"Who is {np}?", f"What is {np}'s name?"]
    return None


def _opening(tokens: list[str], clauses: int) -> list[str]:
    """A sentence's (or its last clause's) words less an opening adverb, with the "I" it left out: "Just got
    back from" -> "I got back from", "Had coffee with" -> "I had coffee with", "My eldest, Freya, just started
    at" -> "started at" (its subject the clause before)."""
    if len(tokens) > 1 and tokens[0].lower() in ADVERBS and (clauses > 1 or tokens[0][:1].isupper()):
        tokens = [tokens[1].capitalize() if clauses == 1 else tokens[1], *tokens[2:]]  # "My eldest, Freya, just"
    if clauses == 1 and tokens and tokens[0][:1].isupper() and tokens[0].lower() in _ELIDED_I:
        tokens = ["I", tokens[0].lower(), *tokens[1:]]
    return tokens


def _whose(pronoun: str, before: str, earlier: str) -> str | None:
    """Whose thing a his/her/their opening a clause names: the user's thing told just before, else the person
    named before it in this sentence (the one that opens it too: "Tova got engaged to a guy called Ruben, and
    her brother"), else in the sentences before ("I had coffee with Nell Abbot. Her husband Piet builds")."""
    first = before.split()[:1]
    opening = [first[0]] if first and first[0][:1].isupper() and first[0].lower() not in STOPWORDS else []
    return antecedent(f"{earlier} {before}") or person_named(
        list(dict.fromkeys(entities(before, 8) + opening)), before, pronoun) or person_named(
        entities(earlier, 8), earlier, pronoun)


def _beside_what_was_said(prefix: str, said: list[str], verb: str, rest: list[str]) -> list[str] | None:
    """[] where the value after the prefix is no value of its verb, else None: no one's ("nobody", a count:
    "I keep bees, three hives at"), negated ("My dog isn't called"), the user's own words ("I meant"), one of
    a list ("torn between Vienna and"), or names beside what was said ("Had coffee with two old friends today,
    Brann and Mira"; "We had a baby girl last week, Odessa" asks the name of ours)."""
    subject = " ".join(said[:-1])
    count = NUMBER.fullmatch(subject.split()[0]) and subject.split()[0].lower() not in ("a", "an", "one")
    if subject.lower() in _NOBODY or {t.lower() for t in said} & _NEGATED or count:
        return []
    if subject.lower() in _PRONOUNS and verb.lower() in _OWN_WORDS or rest[-1:] in (["and"], ["or"]):
        return []
    if prefix.rstrip().endswith(",") and len(rest) > 1 and rest[-1].rstrip(",") not in PREPOSITIONS and \
            verb.lower() not in _COPULA and not {"called", "named"} & set(rest):
        kind = last_object(" ".join(rest)) if subject.lower() in ("i", "we") else None
        return [f"What is {'my' if subject.lower() == 'i' else 'our'} {kind} called?"] if kind else []
    return None


def _as_asked(subject: str) -> str:
    """A subject as a question says it: "Me and my wife" -> "my wife and I", "My sister" -> "my sister"."""
    if together := re.fullmatch(r"(?:me and (?P<first>.+)|(?P<last>.+) and (?:me|I))", subject, re.IGNORECASE):
        subject = f"{together['first'] or together['last']} and I"
    if subject.lower() in _PRONOUNS:
        return subject.upper() if subject.lower() == "i" else subject.lower()
    if subject.split()[0].lower() in _OWNERS:
        return subject[0].lower() + subject[1:]
    return subject


def _as_is(tokens: list[str]) -> list[str]:
    """"My favourite food has to be" / "would be" / "must be" / "has (always) been" read as "My favourite food
    is": after a subject
    that is not a pronoun ("I would be" is a wish, not a value)."""
    said = " ".join(tokens)
    m = re.search(r" (?:(?:has to|would have to|would|must|will always) be|ha(?:s|ve) been)$", said)
    if m and len(tokens) > 3 and tokens[0].lower() not in {*_PRONOUNS, "he", "she", "it"}:
        return said[:m.start()].split() + ["is"]
    return tokens


def _verbless_questions(prefix: str, tokens: Sequence[str]) -> list[str]:
    """The questions of a prefix with no verb: a thing named before a colon ("new code for X's shop:" ->
    "What is the new code for X's shop?"), or someone named beside an appositive ("My new roommate, Tasko,"
    -> "Who is my new roommate?"), or a thing of the user's told by its kind ("I got a new car, a")."""
    if re.search(r",\s*(?:a|an)\s*$", prefix) and (thing := antecedent(prefix[:prefix.rfind(",")])):
        return [f"What is {thing}?"] + kind_questions(thing)
    first = tokens[0].lower()
    if re.search(r"[:\-]\s*$", prefix) and len(tokens) >= 2 and (tokens[0][0].islower() or first in (
            "my", "our", "the", "new")):  # "New locker code: 9902"
        np = " ".join([first, *tokens[1:]])
        return [f"What is {np}?" if first in ("my", "our", "the") else f"What is the {np}?"]
    if prefix.rstrip().endswith(",") and len(tokens) >= 2 and tokens[0].lower().split()[0] in ("my", "our"):
        np = owner_lower(" ".join(tokens))
        return [f"Who is {np}?", f"What is {np}'s name?"]
    return []


# someone described before their name, after what they are: "The new intern, a lad called" (Fergus next)
_SOMEONE_CALLED = re.compile(r"(?:a|an)\s+(?:[a-z]+\s+){0,2}?(?:guy|lad|man|woman|girl|boy|lady|chap|bloke|fellow|"
                             r"person|gentleman)\s+(?:called|named)", re.IGNORECASE)


def _noun_phrase(clause: str) -> str | None:
    """A clause that is only a noun phrase of the user's or a definite one ("The new intern", "my dentist"), as
    a question names it; None for anything else ("I met him")."""
    tokens = LEAD.sub("", clause).split()
    if 2 <= len(tokens) <= 4 and tokens[0].lower() in ("my", "our", "the") and all(
            t.isalpha() and t.islower() and not is_verb(t) for t in tokens[1:]):
        return owner_lower(" ".join([tokens[0].lower(), *tokens[1:]]))
    return None


# someone of the user's named right after, at the end of a clause: "I had lunch with my boss, " (a name next)
_APPOSITIVE = re.compile(r"(?<=\s)(?P<np>(?:my|our) (?:[a-z]+ )?(?!(?:and|or|but|so)\b)[a-z]+),\s*$", re.IGNORECASE)
# the user's people told by how many, their names next: "I have two brothers, " (Tam and Ivo next)
_HAVE_NAMED = re.compile(r"(?:^|[,;]\s+)(?P<who>I|we)(?:'ve got| have got|'ve| have) (?P<n>a|an|one|two|three|four|"
                         r"five|six) (?:(?:older|younger|little|big|twin|step)\s+)?(?P<kind>[a-z]+),\s*$",
                         re.IGNORECASE)
# a naming told as "a name for X" just before the name: "We finally settled on a name for the cat:"
_NAME_FOR = re.compile(r"\bname\s+for\s+(?P<thing>(?:my|our|the|his|her|their)\s+[\w'-]+(?:\s+[\w'-]+)?)\s*[:,\-]?\s*$",
                       re.IGNORECASE)



