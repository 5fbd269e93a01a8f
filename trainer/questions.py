"""The questions a night asks about an episode, written without a model: relation-agnostic templates.

Every question is something a user could ask later, in the user's own voice: about a name the chat
mentions ("What do you know about Mirpa Lovos?"), about something of theirs ("What is my dog called?"),
about what the assistant suggested when asked ("What did you suggest for my kitten?"), the statement
turned into its own question ("I work at Lobel" -> "Where do I work?"), the request turned into the
question about its answer ("Choose a code for my door." -> "What code did you choose for my door?"), or
the start of a told sentence to continue (cloze). The in-context teacher answers them; none of them reads a relation or a probe.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from trainer.chat import Messages
from trainer.episodes import answered_request, asks, told
from trainer.text import STOPWORDS, entities, words

TEMPLATES = (
    "Repeat what I told you about {x}.",
    "What do you know about {x}?",
    "What's new with {x}?",
    "Remind me what I said about {x}.",
    "Summarize what I told you about {x} in one sentence.",
    "Tell me about {x}.",
    "What did I tell you about {x}?",
    "What happened with {x}?",
)
# something of the user's, {h} with its possessive: "my dog", "our book club" (asked in the first person)
MINE = (
    "What is {h} called?",
    "What do you know about {h}?",
    "What did I tell you about {h}?",
    "Tell me about {h}.",
)
# something the user asked the assistant for: the answer is what the assistant said
ASKED = (
    "What did you suggest for {h}?",
    "What did you come up with for {h}?",
    "What did you say about {h}?",
)
# asked once per window: the in-context teacher copies what was said (small models copy well)
RESTATE = "Repeat exactly what I just told you, word for word."
# cloze prompts: the start of something said; the teacher, seeing it all, says the rest
CLOZE = ('Continue what I told you: "{p} ..."', "Repeat what I told you about {p}.")
CLOZE_BY_ASSISTANT = 'Continue what you told me: "{p} ..."'
CLOZE_CUTS = (0.5, 0.35, 0.65)
QUESTION_PROMPT = (
    "Write one short question that can be answered from what I told you in this conversation. "
    "Reply with the question only."
)
PROMPT_WORDS = words(" ".join(TEMPLATES + MINE + ASKED + CLOZE + (CLOZE_BY_ASSISTANT, RESTATE, QUESTION_PROMPT)))


def about_something(question: str, told_words: set[str]) -> bool:
    """Whether a question names something the chat told (a cloze of "I might ..." names nothing): one
    that names nothing would be answered with the whole chat."""
    return question == RESTATE or bool((words(question) - PROMPT_WORDS) & told_words)


def asks_what_you_said(question: str) -> bool:
    """Whether a question asks what the assistant said (`ASKED`): its answer is the assistant's reply."""
    return bool(re.search(r"\b(?:did you|you (?:suggest|say|recommend|come|told))\b", question, re.IGNORECASE))


def identifies(question: str, episode_id: str, told_by_id: dict[str, str]) -> bool:
    """Whether the episode's words a question names are not all said in any other episode (the pair
    "Voska Belshi" singles out one person even when another is called Voska). One that does not asks the
    same of several episodes ('Continue what I told you: "The door code ..."'): it still trains (its answer
    states the whole fact), but it cannot test one memory, so it is never a probe."""
    asked = (words(question) - PROMPT_WORDS) & words(told_by_id[episode_id])
    return bool(asked) and not any(asked <= words(text) for eid, text in told_by_id.items() if eid != episode_id)


def distinctive(terms: Sequence[str], episode_id: str, told_by_id: dict[str, str]) -> list[str]:
    """The terms that no other episode told: what a reply must contain to show it recalls *this*
    episode, not only its topic ("parrot", "harbour", "studio" are said in many)."""
    elsewhere = set().union(*(words(text) for eid, text in told_by_id.items() if eid != episode_id))
    return [t for t in terms if t not in elsewhere]


def template_questions(messages: Messages, config, rng: random.Random) -> list[str]:
    """The fixed questions about a window: restate, templates about its names (no cloze prompts)."""
    names = entities("\n".join(m["content"] for m in messages), config.entities_per_episode)
    questions = [RESTATE] if config.restate else []
    for name in names:
        questions += [t.format(x=name) for t in TEMPLATES[: max(config.template_questions, 0)]]
    return questions


def cloze_questions(messages: Messages, limit: int) -> list[str]:
    """Relation-agnostic prompts made of the start of the user's last statements, cut at word positions."""
    out: list[str] = []
    said = [m["content"] for m in messages if m["role"] == "user"][::-1]
    sentences = [s for text in said for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 4]
    for cut in CLOZE_CUTS:
        for sentence in sentences:
            tokens = sentence.split()
            prefix = " ".join(tokens[: max(2, round(len(tokens) * cut))]).rstrip(",;:")
            out += [t.format(p=prefix) for t in CLOZE]
    return list(dict.fromkeys(out))[:limit]


def value_start(sentence: str, own: set[str]) -> int | None:
    """Index (in `sentence.split()`) where the sentence's last run of `own` words (what only this episode
    says: the value) begins; None when it has none."""
    tokens = sentence.split()
    marked = [i for i, t in enumerate(tokens) if words(t) & own]
    if not marked:
        return None
    start = marked[-1]
    while start > 0 and start - 1 in marked:
        start -= 1
    return start


def key_cloze_questions(messages: Messages, episode_id: str, told_by_id: dict[str, str]) -> list[str]:
    """Cloze prompts cut where a told sentence's value begins, before its last run of words no other
    episode says: 'Continue what I told you: "Quick update: Mirpa Lovos's new parrot is named ..."'. The
    prompt names the person and the kind of fact together and leaves out what is told of them, so the
    answer is bound to that person where the kind of fact is shared with other people. What the assistant
    said is continued as its own words ('Continue what you told me: "How about ..."')."""
    out: list[str] = []
    for t in told(messages):
        tokens = t.text.split()
        start = value_start(t.text, set(distinctive(sorted(words(t.text)), episode_id, told_by_id)))
        if start is not None and start >= (3 if t.role == "user" else 2):
            template = CLOZE[0] if t.role == "user" else CLOZE_BY_ASSISTANT
            out.append(template.format(p=" ".join(tokens[:start]).rstrip(",;:")))
    return list(dict.fromkeys(out))


# a word that ends a possessive phrase: a verb, a conjunction, a preposition, a time word
_PHRASE_END = set("""is are was were has have had be been and or but to in at on for from with that who which
    because since so now today yesterday tonight again finally always never also really still just called named
    keeps likes loves lives works plays drives studies teaches got moved left started a an the""".split())


def handles(sentence: str) -> list[str]:
    """What a sentence calls the user's own ("my new kitten", and its last word "my kitten"), with its
    my/our: at most three lower-case words after it, up to a verb or a name."""
    out: list[str] = []
    tokens = sentence.split()
    for i, token in enumerate(tokens):
        if token.lower() not in ("my", "our"):
            continue
        mine = token.lower()
        phrase: list[str] = []
        for word in tokens[i + 1:i + 4]:
            bare = word.strip(".,;:!?\"'()")
            if not bare or not bare[0].islower() or bare.lower() in _PHRASE_END:
                break
            phrase.append(bare)
            if bare != word:  # punctuation ends the phrase
                break
        if phrase and phrase[-1].lower() not in STOPWORDS:
            out.append(f"{mine} {' '.join(phrase)}")
            if len(phrase) > 1:
                out.append(f"{mine} {phrase[-1]}")
    return list(dict.fromkeys(out))


def handle_questions(messages: Messages, limit: int) -> list[str]:
    """Questions about the user's own things a window names: what they told of them (`MINE`), or, where
    they asked the assistant for something, what it said (`ASKED`). `limit` templates per handle."""
    out: list[str] = []
    for t in told(messages):
        if t.role != "user":
            continue
        templates = ASKED if asks(messages[t.turn]) else MINE
        for handle in handles(t.text):
            out += [q.format(h=handle) for q in templates[:limit]]
    return list(dict.fromkeys(out))


_LEAD = re.compile(r"^(?:(?:by the way|btw|quick update|update on [^:]+|oh|also|actually|so|well|anyway|"
                   r"fun fact|guess what|just so you know|you know what|news|and|but)[:,!]?\s+)+", re.IGNORECASE)
_PRONOUNS = {"i": "do", "we": "do", "you": "do", "they": "do"}
_VAGUE = {"he", "she", "it", "they", "this", "that", "there"}
_COPULA = {"is", "are", "was", "were"}
_PLACE = {"in", "at", "near", "on", "from", "to"}
_ARTICLES = {"a", "an", "the"}
_MODAL = {"might", "may", "will", "would", "can", "could", "should", "must", "shall", "am", "'m", "think", "guess"}
_PAST = {"was", "were", "had", "got", "bought", "went", "took", "made", "gave", "found", "met", "saw", "left", "sold",
         "grew", "became", "began", "chose", "wrote", "won", "built", "drove", "ran", "kept", "brought", "named"}


def _verb_at(tokens: Sequence[str]) -> int | None:
    """Where the sentence's verb is: right after a pronoun subject, else the first copula or
    third-person/past verb after the subject."""
    if tokens[0].lower() in _PRONOUNS:
        return 1 if len(tokens) > 1 and tokens[1].lower() not in _MODAL else None
    for i, token in enumerate(tokens[1:], 1):
        low = token.lower()
        if low in _COPULA or low in ("has", "had"):
            return i
        if token[0].islower() and len(low) > 3 and not low.endswith(("'s", "ss", "us")) \
                and (low.endswith("s") or low.endswith("ed")) and low not in STOPWORDS:
            return i
    return None


def _base(verb: str) -> str:
    """The bare form of a third-person or regular past verb (works -> work, studies -> study, named -> name)."""
    low = verb.lower()
    irregular = {"has": "have", "had": "have", "does": "do", "goes": "go", "got": "get", "bought": "buy",
                 "went": "go", "took": "take", "made": "make", "gave": "give", "found": "find", "met": "meet",
                 "saw": "see", "left": "leave", "sold": "sell", "grew": "grow", "became": "become",
                 "began": "begin", "chose": "choose", "wrote": "write", "won": "win", "built": "build",
                 "drove": "drive", "ran": "run", "kept": "keep", "brought": "bring"}
    if low in irregular:
        return irregular[low]
    if low.endswith("ies"):
        return low[:-3] + "y"
    if low.endswith(("ches", "shes", "sses", "xes", "zes", "oes")):
        return low[:-2]
    if low.endswith("ed"):
        stem = low[:-2]
        if len(stem) >= 2 and stem[-1] == stem[-2]:
            return stem[:-1]
        cvc = len(stem) <= 4 and len(stem) >= 3 and stem[-1] not in "aeiouwy" and stem[-2] in "aeiou" \
            and stem[-3] not in "aeiou"
        return stem + "e" if cvc else stem
    return low[:-1] if low.endswith("s") else low


def statement_questions(prefix: str) -> list[str]:
    """The questions whose answer is what a statement says after `prefix` (the statement up to its value):
    "I work at" -> "Where do I work?", "my dog is called" -> "What is my dog called?", "Kalo Loka's phone
    number ends in" -> "What does Kalo Loka's phone number end in?", "Pavos Katen lives in a town called" ->
    "Which town does Pavos Katen live in?". English word order, no relation read; [] when the prefix has no
    subject and verb it can turn (or its subject is a bare pronoun: "she works at" names no one)."""
    clauses = re.split(r"[,;:]\s+", _LEAD.sub("", prefix.strip()).rstrip(",;:-"))
    tokens = _LEAD.sub("", clauses[-1]).split()  # "Random thing, but X's husband is called": X's husband
    at = _verb_at(tokens) if tokens else None
    if not at:
        return []
    subject, verb, rest = " ".join(tokens[:at]), tokens[at], [t.lower() for t in tokens[at + 1:]]
    if subject.lower() in _VAGUE:  # "Update on Tenett Mirbel: she works at": she is the last name before
        named = entities(prefix[:prefix.rfind(clauses[-1])], 8)
        if not named or subject.lower() in ("it", "this", "that", "there"):
            return []
        people = [n for n in named if len(n.split()) > 1] or named  # "Tenett Mirbel" over "Gorbel"
        subject = max(people, key=lambda n: prefix.rfind(n))
    if subject.lower() in _PRONOUNS:
        subject = subject.upper() if subject.lower() == "i" else subject.lower()
    elif subject.split()[0].lower() in ("my", "our", "the", "a"):
        subject = subject[0].lower() + subject[1:]
    low = verb.lower()
    if low in _COPULA:
        if rest and rest[-1] in _PLACE:
            return [f"Where {low} {subject} {' '.join(rest[:-1])}".rstrip() + "?",
                    f"What {low} {subject} {' '.join(rest)}?"]
        if rest and rest[-1] in _ARTICLES:
            rest = rest[:-1]
        return [f"What {low} {subject} {' '.join(rest)}".rstrip() + "?"]
    past = low in _PAST or low.endswith("ed")
    aux = "did" if past else _PRONOUNS.get(subject.lower(), "does")
    base = _base(verb) if (past or aux == "does") else low
    named = re.fullmatch(r"(?:(\w+) )?(?:a|an|the) (\w+) (?:called|named)", " ".join(rest))
    if named:
        prep = f" {named[1]}" if named[1] else ""
        out = [f"Which {named[2]} {aux} {subject} {base}{prep}?"]
        return out + ([f"Where {aux} {subject} {base}?"] if named[1] in _PLACE else [])
    if rest and rest[-1] in _ARTICLES:
        rest = rest[:-1]
    if len(rest) == 1 and rest[0] in _PLACE:  # "lives in" asks where, "ends in" asks what: ask both
        return [f"Where {aux} {subject} {base}?", f"What {aux} {subject} {base} {rest[0]}?"]
    return [f"What {aux} {subject} {base} {' '.join(rest)}".rstrip() + "?"]


_POLITE = r"(?:(?:please|could you|can you|would you|will you|help me|now)\s+)*"
_ASK_VERB = r"come up with|think of|decide on|suggest|pick|choose|recommend|find|propose|invent|make|plan|write|" \
            r"create|draft|name|give|get"
# "Can you suggest a name for my new kitten?" -> "What name did you suggest for my new kitten?"
_ASKED_FOR = re.compile(rf"^{_POLITE}(?P<verb>{_ASK_VERB})\s+(?:me\s+|us\s+)?(?:a|an|the|some)\s+(?:good\s+|nice\s+)?"
                        rf"(?P<thing>\w+(?:\s+\w+)?)\s+(?P<prep>for|to)\s+(?P<rest>.+?)(?:,?\s*please)?[.?!]*$",
                        re.IGNORECASE)
# "Give our book club a name, please." -> "What name did you give our book club?"
_GIVE_A = re.compile(rf"^{_POLITE}(?P<verb>give|find|pick|choose)\s+(?P<rest>(?:my|our|the)\s+[\w\s'-]+?)\s+(?:a|an)\s+"
                     rf"(?P<thing>\w+)(?:,?\s*please)?[.?!]*$", re.IGNORECASE)


def request_questions(messages: Messages) -> list[str]:
    """What the user asked the assistant for, as the question they would ask about it later: "Choose a code
    for my garage door." -> "What code did you choose for my garage door?". Its answer is the assistant's
    reply (`asks_what_you_said`). Only a request the assistant answered is turned."""
    out: list[str] = []
    for t in told(messages):
        if t.role != "user" or not answered_request(messages, t.turn):
            continue
        sentence = _LEAD.sub("", t.text.strip())
        match = _ASKED_FOR.match(sentence)
        if match:
            out.append(f"What {match['thing'].lower()} did you {match['verb'].lower()} {match['prep'].lower()} "
                       f"{match['rest']}?")
            continue
        match = _GIVE_A.match(sentence)
        if match:
            out.append(f"What {match['thing'].lower()} did you {match['verb'].lower()} {match['rest']}?")
    return list(dict.fromkeys(out))


def turned_questions(messages: Messages, episode_id: str, told_by_id: dict[str, str]) -> list[str]:
    """`statement_questions` of every told user sentence, cut where its value begins."""
    out: list[str] = []
    for t in told(messages):
        if t.role != "user" or t.text.endswith("?"):  # a question states nothing to turn
            continue
        start = value_start(t.text, set(distinctive(sorted(words(t.text)), episode_id, told_by_id)))
        if start:
            out += statement_questions(" ".join(t.text.split()[:start]))
    return list(dict.fromkeys(out))

