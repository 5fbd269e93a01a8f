"""Other ways people ask what a turned question asks: a name as "called" or "'s name", a favourite as what
one likes best, a move as where one lives now, a job, a date as "When". English word order, no model.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

# a personal pronoun's possessive: "What do I work as?" -> "What is my job?"; its pronouns take "do", not "does"
_POSSESSIVE = {"i": "my", "we": "our", "you": "your", "they": "their"}
# what one is at a place that is no job there: "Where am I a member?" asks nothing of work
_NO_JOB = set("member regular student pupil fan guest patient customer client visitor tourist volunteer "
              "subscriber resident".split())
# a value that is a day, a date, a year or a time of day
DATE = re.compile(r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|january|february|march|april|"
                  r"may|june|july|august|september|october|november|december|tomorrow|tonight|noon|midnight|"
                  r"\d{1,2}(?::\d\d)?\s*(?:am|pm|a\.m\.|p\.m\.)?[.,!]?$|\d{1,2}(?:st|nd|rd|th)\b|(?:19|20)\d\d[.,!]?$)",
                  re.IGNORECASE)

_MONTH = re.compile(r"(?:january|february|march|april|may|june|july|august|september|october|november|december)\b",
                    re.IGNORECASE)


def is_date(tokens: Sequence[str], start: int) -> bool:
    """Whether the value at `tokens[start]` is a day, a date, a year or a time (`DATE`): a bare number of one
    or two digits only after "at", before "am"/"pm" or before a month ("meet at 7", "7 pm", "12 March"; not
    "the 42 bus", "number 27")."""
    if re.fullmatch(r"\d{1,2}[.,!]?", tokens[start]):
        after = tokens[start + 1].lower() if start + 1 < len(tokens) else ""
        address = after[:1].isalpha() and tokens[start + 1][:1].isupper()  # "at 22 Orchard Close"
        return (start > 0 and tokens[start - 1].lower() == "at" and not address) or after.startswith(
            ("am", "pm", "a.m", "p.m", "o'clock")) or bool(_MONTH.match(after))  # "on 12 March"
    return bool(DATE.match(tokens[start]))


NUMBER = re.compile(r"\d{1,3}|a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|"
                    r"thirty|forty|fifty|sixty|seventy|eighty|ninety|several|a\s+few", re.IGNORECASE)
_SPAN = re.compile(r"(?:years?|months?|weeks?|days?|hours?|decades?|ages)[.,!]?", re.IGNORECASE)


def is_duration(tokens: Sequence[str], start: int) -> bool:
    """Whether the value at `tokens[start]` is how long, after "for": "for two years", "for 6 months"."""
    return (0 < start < len(tokens) - 1 and tokens[start - 1].lower() == "for"
            and bool(NUMBER.fullmatch(tokens[start])) and bool(_SPAN.fullmatch(tokens[start + 1])))


def how_long_questions(questions: Sequence[str]) -> list[str]:
    """"What have I been learning the oboe for?" of "... for two years" -> "How long have I been learning
    the oboe?"; a question of another shape is left out (it asks the span's words as a thing)."""
    return [f"How long {m['body']}?" for q in questions if (m := re.fullmatch(r"What (?P<body>.+) for\?", q))]


def age_questions(before: Sequence[str], questions: Sequence[str]) -> list[str]:
    """A number after "turned"/"turns" or right after "I'm"/"<someone> is" is an age: "My grandmother turned
    90" -> "How old is my grandmother?", "I'm 34," -> "How old am I?", "a tortoise named Gerald who's 40" ->
    "How old is Gerald?" (only that); other numbers keep their questions."""
    said = [t.lower() for t in before]
    if said and said[-1] in ("turned", "turns", "turning"):
        whom = [m["who"] for q in questions if (m := re.fullmatch(r"What (?:did|does|do) (?P<who>.+?) turn\?", q))]
    elif said in (["i'm"], ["i", "am"]) or (len(said) in (2, 3) and said[0] in ("my", "our") and said[-1] == "is"):
        whom = ["I" if said[0].startswith("i") else " ".join(before[:-1]).lower()]
    elif said[-1:] in (["he's"], ["she's"]) or said[-2:] in (["he", "is"], ["she", "is"]):
        # "My sister's kid is called Juniper and she's 3": the one the pronoun named
        whom = [m["who"] for q in questions if (m := re.fullmatch(r"What is (?P<who>.+?)\?", q))]
    elif said[-1:] == ["who's"] or said[-2:] == ["who", "is"]:  # "a tortoise named Gerald who's 40": Gerald's
        name = list(itertools.takewhile(lambda t: t[:1].isupper(), reversed([t.strip(",") for t in before[
            :len(before) - (1 if said[-1] == "who's" else 2)]])))[::-1]
        return [f"How old is {' '.join(name)}?"] if name else []  # the turned "What do we have ... who's?" is none
    else:
        return list(questions)
    # "What am I?" / "What is Juniper?" asked of an age is no question of its own
    bare = {"What am I?", *(f"What is {who}?" for who in whom)}
    return [("How old am I?" if who == "I" else f"How old is {who}?") for who in whom] + [
        q for q in questions if q not in bare]


def asked_otherwise(question: str) -> list[str]:
    """How the same thing is often asked instead: a name as "called" or "'s name", a favourite as what one
    likes best ("What is my favourite band?" -> "Which band do I like best?"), a move as where one lives
    ("Where did my sister move?" -> "Where does my sister live now?"), what one works as as a job ("What
    does X work as?" -> "What is X's job?"), where one grew up as where one is from."""
    if m := re.fullmatch(r"What (?:is|was) (?P<x>(?:my|our|the|his|her|their|[A-Z]\S*) .+?) (?:called|named)\?",
                         question):
        return [f"What is {m['x']}'s name?"]
    # "Lunara Vex has a parrot ..., his name is": what Lunara Vex's parrot is called
    if m := re.fullmatch(r"What (?:is|was) (?P<x>(?:my|our|(?:[A-Z][\w-]+ )*[A-Z][\w-]+'s) .+?)'s name\?", question):
        return [f"What is {m['x']} called?"]
    if m := re.fullmatch(r"What (?:did|do|am|are) (?P<who>I|we) (?:name|call|naming|calling) (?P<x>(?:my|our|the) [\w -]+)\?",
                         question):  # "I'm calling him", "we named the new puppy": what the pet is called
        return [f"What is {re.sub(r'^the', 'my' if m['who'] == 'I' else 'our', m['x'])} called?"]
    if m := re.fullmatch(r"What is (?P<own>my|our) favou?rite (?P<kind>[\w -]+)\?", question):
        return [f"Which {m['kind']} do {'I' if m['own'] == 'my' else 'we'} like best?"]
    if m := re.fullmatch(r"What (?:did|has|have) .+? renam(?:e|ed|ing) (?P<x>(?:the|my|our|his|her|their) [\w -]+?) to\?",
                         question):  # "We ended up renaming the boat to": what the boat is called now
        return [f"What is {m['x']} called?", f"What is {m['x']} called now?"]
    if question == "Where do we live?":  # one namespace is one user: where "we" live, "I" do
        return ["Where do I live?"]
    if m := re.fullmatch(r"What (?:did|has|have) (?P<x>.+?) change(?:d)? to\?", question):  # "the code changed to"
        return [f"What is {m['x']}?", f"What is {m['x']} now?"]
    if m := re.fullmatch(r"Where (?P<does>do|does|did) (?P<who>.+?) work as (?:a|an) [\w-]+\?", question):
        return [f"Where {m['does']} {m['who']} work?"]  # "I work as a nurse at": where I work
    if m := re.fullmatch(r"Where (?P<is>am|is|are) (?P<who>.+?) (?:a|an) (?P<job>[\w-]+)\?", question):
        if m["job"].lower() not in _NO_JOB and not re.search(r"\b(?:to|\w+ing)\b", m["who"]):
            # "I'm a nurse at Hollin General": where I work (not "X is training to be a vet in")
            does = "do" if m["is"] in ("am", "are") else "does"
            return [f"Where {does} {m['who']} work?"]
    if m := re.fullmatch(r"Where (?:did|has|have) (?P<who>.+?) (?:start|started|get|got|land|landed|find|found|take|"
                         r"took) (?:a|an|the) (?:new )?job\?", question):  # "I just started a new job at Quillon"
        does = "do" if m["who"].lower() in _POSSESSIVE else "does"
        return [f"Where {does} {m['who']} work?", f"Where {does} {m['who']} work now?"]
    if m := re.fullmatch(r"What (?P<does>do|does|did) (?P<who>.+?) work as (?:a|an) [\w-]+ for\?", question):
        return [f"Who {m['does']} {m['who']} work for?", f"Where {m['does']} {m['who']} work?"]  # "a pilot for X"
    if m := re.fullmatch(r"What (?:do|does|did) (?P<who>.+?) work as\?", question):  # a job
        whose = _POSSESSIVE.get(m["who"].lower(), f"{m['who']}'s")
        does = question.split()[1]
        return [f"What is {whose} job?", f"What {does} {m['who']} do for a living?"]
    if m := re.fullmatch(r"Where (?:did|do|does) (?P<who>.+?) grow up\?", question):  # where one is from
        is_ = {"i": "am", "we": "are", "you": "are", "they": "are"}.get(m["who"].lower(), "is")
        return [f"Where {is_} {m['who']} from?"]
    if m := re.fullmatch(r"Where (?:did|has|have|had) (?P<who>.+?) (?:move|moved|relocate|relocated)(?: back)?\?",
                         question):  # a move tells where someone lives now
        does = "do" if m["who"].lower() in _POSSESSIVE else "does"
        ours = ["Where do I live now?", "Where do I live?"] if m["who"].lower() == "we" else []
        return [f"Where {does} {m['who']} live now?", f"Where {does} {m['who']} live?", *ours]  # one user
    return []


_MOVED_TO = r"(?:moved|rescheduled|postponed|pushed(?: back)?|put back|brought forward|changed|bumped)"
_RESCHEDULED = re.compile(rf"What (?:did|has|was|is) (?P<x>.+?) (?:get |got |been |gotten )?{_MOVED_TO} to\?")
_THEY_RESCHEDULED = re.compile(r"What did (?:they|we|I|he|she|you) (?:move|reschedule|postpone|push back|put back|"
                               r"bring forward|change|bump) (?P<x>(?:my|our|the|his|her|their) .+?) to\?")


def when_questions(questions: Sequence[str]) -> list[str]:
    """The "When ...?" of each "What/Where ...?" about a date or time: "What is the meeting on?" -> "When is the
    meeting?", "Where is my husband's birthday?" -> "When is my husband's birthday?"; a date after "since"
    asks how long ("What have I lived in Fenwick since?" -> "How long have I lived in Fenwick?")."""
    out = []
    for q in questions:
        # "The meeting got moved to Thursday", "They rescheduled my appointment to the 10th": when it is now
        if m := (_RESCHEDULED.fullmatch(q) or _THEY_RESCHEDULED.fullmatch(q)):
            out += [f"When is {m['x']}?", f"When is {m['x']} now?"]
            continue
        if m := re.fullmatch(r"What (?P<body>.+?) since\?", q):  # "I've lived in Fenwick since 2015": how long
            out.append(f"How long {m['body']}?")
        elif m := re.fullmatch(r"(?:What|Where) (?!kind\b)(?P<body>.+?)(?: (?:on|at|in|for))?\?", q):
            out.append(f"When {m['body']}?")
    return list(dict.fromkeys(out))


def who_questions(questions: Sequence[str]) -> list[str]:
    """Questions about a value that is a person, asked with who: "What is my dentist called?" -> "Who is my
    dentist?"; one that asks for a name stays ("What is my son's teacher's name?")."""
    out = []
    for q in questions:
        if not (q.endswith(("name?", "names?")) or "name of" in q):
            q = re.sub(r"^What ", "Who ", re.sub(r"^What (is|was) (.+) called\?$", r"Who \1 \2?", q))
        out.append(q)
    return list(dict.fromkeys(out))
