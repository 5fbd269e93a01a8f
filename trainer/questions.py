"""The questions a night asks about an episode, written without a model: relation-agnostic templates.

Every question is something a user could ask later, in the user's own voice: about a name the chat
mentions ("What do you know about Mirpa Lovos?"), about something of theirs ("What is my dog called?"),
about what the assistant suggested when asked ("What did you suggest for my kitten?"), the statement
turned into its own question ("I work at Lobel" -> "Where do I work?"), the request turned into the
question about its answer ("Choose a code for my door." -> "What code did you choose for my door?"), or
the start of a told sentence to continue (cloze), a tool's result as what the assistant looked up. The
in-context teacher answers them; none of them reads a relation or a probe.
Statements and requests are turned into questions in `trainer.statements`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from trainer.chat import Messages
from trainer.episodes import GOES_ON, asks, told
from trainer.frames import framed
from trainer.paraphrases import DATE
from trainer.text import STOPWORDS, entities, inflection_stem, words
from trainer.text import values as told_values
from trainer.verbs import PAST, base
from trainer.text import sentences as split_sentences

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
# a tool's result is neither the user's words nor the assistant's: it is what the assistant looked up
CLOZE_BY_TOOL = ('Continue what you looked up: "{p} ..."', "Repeat what you looked up about {p}.")
CLOZE_CUTS = (0.5, 0.35, 0.65)
QUESTION_PROMPT = (
    "Write one short question that can be answered from what I told you in this conversation. "
    "Reply with the question only."
)
PROMPT_WORDS = words(" ".join(TEMPLATES + MINE + ASKED + CLOZE + CLOZE_BY_TOOL
                               + (CLOZE_BY_ASSISTANT, RESTATE, QUESTION_PROMPT)))


_FROM = re.compile(r"Where (?:am I|are we|was I|were we) from\?")


def about_something(question: str, told_words: set[str]) -> bool:
    """Whether a question names something the chat told (a cloze of "I might ..." names nothing): one
    that names nothing would be answered with the whole chat."""
    asked = words(question) - PROMPT_WORDS
    if question == RESTATE or asked & (told_words | framed(told_words)):  # "Where do I work?" of "changed jobs"
        return True
    if _FROM.fullmatch(question) or question in ("How old am I?", "How old are we?"):  # the user's own,
        # in stop words only: "I'm from Dunmarsh", "I'm 34"
        return True
    # a told verb asked in its bare form: "I switched to Oskaro" -> "What did I switch to?", "I got a" -> "get"
    told_stems = {inflection_stem(w) for w in told_words | {base(w) for w in told_words & PAST}}
    return bool({inflection_stem(w) for w in asked} & told_stems)


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
    """Relation-agnostic prompts made of the start of the user's last statements and tool results (what
    the assistant looked up, `CLOZE_BY_TOOL`), the latest first, cut at word positions."""
    out: list[str] = []
    said = [(m["content"], CLOZE if m["role"] == "user" else CLOZE_BY_TOOL)
            for m in messages if m["role"] in ("user", "tool")][::-1]
    sentences = [(s, templates) for text, templates in said for s in split_sentences(text)
                 if len(s.split()) >= 4]
    for cut in CLOZE_CUTS:
        for sentence, templates in sentences:
            tokens = sentence.split()
            prefix = " ".join(tokens[: max(2, round(len(tokens) * cut))]).rstrip(",;:")
            out += [t.format(p=prefix) for t in templates]
    return list(dict.fromkeys(out))[:limit]


def value_runs(sentence: str, own: set[str]) -> list[int]:
    """Where each run of `own` words in `sentence.split()` begins, in order."""
    marked = [bool(words(t) & own) for t in sentence.split()]
    return [i for i, m in enumerate(marked) if m and (i == 0 or not marked[i - 1])]


def value_start(sentence: str, own: set[str]) -> int | None:
    """Index (in `sentence.split()`) where the sentence's last run of `own` words (what only this episode
    says: the value) begins; None when it has none."""
    runs = value_runs(sentence, own)
    return runs[-1] if runs else None


def key_cloze_questions(messages: Messages, episode_id: str, told_by_id: dict[str, str]) -> list[str]:
    """Cloze prompts cut where a told sentence's value begins, before its last run of words no other
    episode says: 'Continue what I told you: "Quick update: Mirpa Lovos's new parrot is named ..."'. The
    prompt names the person and the kind of fact together and leaves out what is told of them, so the
    answer is bound to that person where the kind of fact is shared with other people. What the assistant
    said is continued as its own words ('Continue what you told me: "How about ..."'), what a tool
    returned as what the assistant looked up ('Continue what you looked up: "The Velmar ferry leaves ..."')."""
    out: list[str] = []
    for t in told(messages):
        tokens = t.text.split()
        start = value_start(t.text, set(distinctive(sorted(words(t.text)), episode_id, told_by_id)))
        if start is not None and start >= (2 if t.role == "assistant" else 3):
            template = {"user": CLOZE[0], "tool": CLOZE_BY_TOOL[0]}.get(t.role, CLOZE_BY_ASSISTANT)
            out.append(template.format(p=" ".join(tokens[:start]).rstrip(",;:")))
    return list(dict.fromkeys(out))


# a word that ends a possessive phrase: a verb, a conjunction, a preposition, a time word
PHRASE_END = set("""is are was were has have had be been and or but to in at on for from with that who which
    because since so now today yesterday tonight again finally always never also really still just called named
    keeps likes loves lives works plays drives studies teaches got moved left started goes runs owns wants needs
    says makes uses by about next last isn't wasn't aren't doesn't didn't hasn't a an the turns said told asked
    thinks went came actually usually recently currently probably apparently literally basically definitely
    totally only even sometimes often please back hurts hurt broke breaks dies died look looks feel feels seem
    seems smells tastes anymore lol haha moving going getting coming leaving starting meets opens closes costs
    stays sits ends starts begins""".split())
# "my" in an exclamation or an apology names nothing of the user's: "Oops, my mistake", "Oh my god"
NOT_THINGS = set("mistake bad fault god goodness gosh word guess apologies pleasure opinion".split())


# a place's preposition just before "my"/"our": what follows is where the thing is, not what a pronoun or a
# name after it names ("My neighbour's cat keeps getting into our garden. Its name is Smudge")
PLACE_BEFORE_MINE = r"\b(?:in|into|at|on|onto|from|near|to|around|outside)\s+"


# what follows a third-person verb, not a plural noun: "my train leaves at", "my daughter goes to"
_VERB_THEN = {"at", "in", "on", "to", "from", "for", "with", "every", "into", "near"}


# the verbs people say after their plural things: "my house plants need water", "my glasses cost a fortune"
_PLURAL_VERBS = {"go", "live", "work", "need", "cost", "like", "love", "hate", "want", "have", "get", "play", "stay",
                 "study", "eat", "come", "visit", "run", "own", "keep"}


def _plural(word: str) -> bool:
    return word.endswith("s") and not word.endswith(("ss", "'s", "us")) and len(word) > 3


def _verb_after(thing: str, word: str, after: str) -> bool:
    """Whether `word`, after the user's `thing` and before `after`, is its verb and ends the thing: "my train
    leaves at" (a third-person verb before a preposition), "my parents live in", "my kids go to", "my house
    plants need water" (a plural thing's verb)."""
    third_person = word.endswith("s") and not word.endswith(("ss", "'s"))
    return third_person and after in _VERB_THEN or _plural(thing) and (after in _VERB_THEN or word in _PLURAL_VERBS)


def handles(sentence: str) -> list[str]:
    """What a sentence calls the user's own ("my new kitten", and its last word "my kitten", where no word
    before it is someone's: "my grandmother's dog" stays whole), with its my/our: at most three lower-case
    words after it, up to a verb or a name."""
    out: list[str] = []
    tokens = sentence.split()
    for i, token in enumerate(tokens):
        if token.lower() not in ("my", "our"):
            continue
        mine = token.lower()
        phrase: list[str] = []
        together = [t.lower() for t in tokens[max(0, i - 2):i]] == ["me", "and"]  # "Me and my brother run"
        for j, word in enumerate(tokens[i + 1:i + (2 if together else 4)], start=i + 1):
            bare = word.strip(".,;:!?\"'()")
            after = tokens[j + 1].lower() if j + 1 < len(tokens) else ""
            if not bare or not bare[0].islower() or bare.lower() in PHRASE_END or (
                    len(bare) > 4 and bare.endswith("ed")) or (  # a verb: "my brother switched", "my landlord fixed"
                    phrase and _verb_after(phrase[-1], bare, after)):
                break
            phrase.append(bare)
            if bare != word:  # punctuation ends the phrase
                break
        if phrase and phrase[-1].endswith("'s") and len(phrase) == 1:  # "my sister's married": my sister
            phrase = [phrase[0][:-2]]
        if phrase and phrase[-1].lower() == "name":  # "our cat's name" is asked about as "our cat"
            phrase = [phrase[0][:-2]] if len(phrase) == 2 and phrase[0].endswith("'s") else []
        if phrase and phrase[-1].lower() not in STOPWORDS and phrase[0].lower() not in NOT_THINGS:
            out.append(f"{mine} {' '.join(phrase)}")
            # "my new kitten" is "my kitten"; "my aunt's dog" is not "my dog", "my son's name" not "my name"
            # ("my day off" is no "my off")
            if len(phrase) > 1 and not any(w.lower().endswith("'s") for w in phrase[:-1]) and \
                    phrase[-1].lower() not in ("off", "out", "up", "away", "over", "back"):
                out.append(f"{mine} {phrase[-1]}")
    return list(dict.fromkeys(out))


def handle_questions(messages: Messages, limit: int) -> list[str]:
    """Questions about the user's own things a window names: what they told of them (`MINE`), or, where
    they asked the assistant for something, what it said (`ASKED`). `limit` templates per handle."""
    out: list[str] = []
    said = told(messages)
    for n, t in enumerate(said):
        if t.role != "user":
            continue
        # a sentence that tells a value, in a turn that asks something else, tells it: "By the way my sister
        # Imogen lives in Pellbridge now. Anyway, what's the weather like?" ("What did you suggest for my sister?")
        asked_for = asks(messages[t.turn]) and (asks({"role": "user", "content": t.text}) or not told_values(t.text))
        # the sentence, and the next one of the turn when a pronoun starts it ("His name is Clover.")
        after = said[n + 1].text if n + 1 < len(said) and said[n + 1].turn == t.turn else ""
        about = f"{t.text} {after}" if GOES_ON.match(after) else t.text
        for handle in handles(t.text):
            templates = ASKED if asked_for else MINE if _named(handle, t.text, about) else MINE[1:]
            out += [q.format(h=handle) for q in templates[:limit]]
    return list(dict.fromkeys(out))


# "call" names only with a name after it ("I'm calling him Pip"; "call my aunt back" is a phone call)
_NAMING = re.compile(r"\b(?:called|named|nicknamed|name|names|name's)\b|\b[Cc]all(?:s|ing)?(?:\s+[a-z]+){0,2}\s+[A-Z]")


_CODE = re.compile(r"[A-Z]{1,3}|\w*\d\w*")


def _named(handle: str, sentence: str, about: str) -> bool:
    """Whether the user's thing has a name in what they told: words of naming in what is `about` it (its
    sentence and one a pronoun starts after it: "His name is Clover.") or a capitalised word beside it ("my
    landlord Mr Pettigrew"). "What is my grandmother called?" of "My grandmother turned 90! She lives in
    Carrow." is answered with the place: a told value in a name's shape, which nights learn and general
    answers then take ("The capital of Japan is called X")."""
    # "my son named his goldfish Sir Fins-a-lot": the naming is the son's, of another thing
    names_another = re.search(re.escape(handle) + r"\s+(?:\w+\s+)?(?:named|called|nicknamed|renamed)\s+"
                              r"(?:his|her|their|its|my|our|the|a|an)\b", about, re.IGNORECASE)
    # "getting into our garden. Its name is Smudge": a place named by where it is, not by the name after
    at_place = re.search(PLACE_BEFORE_MINE + re.escape(handle), sentence, re.IGNORECASE)
    # "My son started a new school. It's called Oakridge": "it" is the school told after my son
    its_thing = re.match(r"\s*It(?:'s|s| is|\b)", about[len(sentence):]) and re.search(
        re.escape(handle) + r"\b.*\b(?:a|an)\s+\w+", sentence, re.IGNORECASE)
    if _NAMING.search(about) and not names_another and not (at_place and not _NAMING.search(sentence)) and not (
            its_thing and not _NAMING.search(sentence)):
        return True
    # "my partner Jo", "my best friend is Raten Shivos", "my car is a Corab"; "Istust, my favourite podcast"
    after = re.search(re.escape(handle.split()[-1]) + r"\W*\s+(?:(?:is|was|'s)\s+)?(?:(?:a|an|the)\s+)?(\S+)",
                      sentence, re.IGNORECASE)
    before = re.search(r"\s(\S+),\s+" + re.escape(handle), sentence, re.IGNORECASE)
    # a date is no name: "My mum's birthday is March 3rd."
    # nor a code: "My flight number is BA 2291", "My license plate is KD71 XRT"
    return any(m and m.group(1)[:1].isupper() and not DATE.match(m.group(1)) and not _CODE.fullmatch(
        m.group(1).strip(".,!?")) for m in (after, before))
