"""The fact a sentence tells when its value's own words do not say which: "I changed jobs, I'm at Brellco now"
tells where the user works, "We moved. We're in Tarnwick now" where they live. A few words of everyday
English frame each such fact; `trainer.statements` asks the framed question ("Where do I work?") and
`trainer.corrections` reads the frame as the kind of fact an earlier answer told. No relation is read.
"""

from __future__ import annotations

# what people say they are at their work: "I'm a nurse at Hollin General" tells where they work (not the people
# one sees at theirs: "my dentist", "the vet")
JOBS = set("""nurse teacher engineer developer designer manager analyst barista chef cook waiter waitress cashier
    accountant lawyer solicitor architect pharmacist paramedic firefighter electrician mechanic carpenter librarian
    receptionist consultant intern researcher scientist professor lecturer programmer secretary cleaner pilot
    surgeon journalist editor clerk technician supervisor bartender baker""".split())
# the fact (the verb a question asks it by) -> the words that frame it in a chat
FRAMES = {
    "work": {"job", "jobs", "work", "works", "working", "company", "employer", "firm", "office", "hired", "career",
             "quit", "resigned", *JOBS},  # "Lysa quit Harbinger Books, she's at Orchid Press now"
    "live": {"moved", "move", "moving", "house", "home", "flat", "apartment", "relocated", "live", "lives", "living"},
}
# frame words small talk says of anything ("on the way home", "a swim before work"): they frame a fact told
# beside a value, but do not pick the sentences that tell it (`cues`)
LOOSE = {"home", "house", "flat", "apartment", "office", "work", "works", "working", "live", "lives", "living"}
# leaving a place, with no word of what it was: "I left Gorbel, I'm at Lobel now" (a firm), "we left Dunmore,
# we're in Tarnwick now" (a town)
_LEFT = {"left", "leaving"}
# what may stand between "I'm" and the place it is at: "We're now in", "I'm currently at"
_NOW = {"now", "currently", "still", "finally", "actually", "officially", "based"}


def framed(said: set[str]) -> set[str]:
    """The facts whose framing words a chat's words include: {"jobs", "brellco"} -> {"work"}; where only a
    leaving frames them ("I left Gorbel, I'm at Lobel now"), either fact."""
    return _framing(said) or (set(FRAMES) if said & _LEFT else set())


def _framing(said: set[str]) -> set[str]:
    return {fact for fact, cues in FRAMES.items() if cues & said}


def cues(asked: set[str]) -> set[str]:
    """The words that tell a change of the fact a question asks by its verb ("Where do I live?" -> moved,
    relocated, ...; "Where do I work?" -> job, company, hired, ...): the sentences to quote for it."""
    return set().union(*(FRAMES[fact] - LOOSE for fact in asked & set(FRAMES)))


def framed_questions(subject: str, rest: list[str], said: set[str]) -> list[str]:
    """"Where do I work?" for "I'm at" (`rest` ["at"]) or "I'm with" told among words of work ("I don't work
    at Gorbel anymore. I'm with"); "Where do we live?" and "Where do I live?" for "We're in" after a move;
    "Where does Dara Vell work?" for "Dara Vell switched jobs; she's at". [] when no frame fits or the
    words are not a place. "on" is where one lives ("We moved, we're on Daye Road now"), "with" where one works."""
    rest = [w for w in rest if w not in _NOW]
    if rest not in (["at"], ["in"], ["with"], ["on"]) or subject.split()[-1].lower() in set().union(*FRAMES.values()):
        return []  # "our flat is on Janfyr Road" tells where the flat is, not where it lives
    does = "do" if subject in ("I", "we", "you", "they") else "does"
    out = []
    # one is "with" a firm but not a town, "on" a street but not a firm ("we're on Daye Road now")
    # left Gorbel, at Lobel: a firm; left Dunmore, in Tarnwick: a town
    left = ({"live"} if rest in (["in"], ["on"]) else {"work"}) if said & _LEFT else set()
    facts = (_framing(said) or left) - ({"live"} if rest == ["with"] else {"work"} if rest == ["on"] else set())
    for fact in sorted(facts):
        out.append(f"Where {does} {subject} {fact}?")
        if subject == "we" and fact == "live":  # one namespace is one user: "we" live where "I" live
            out.append(f"Where do I {fact}?")
    return out
