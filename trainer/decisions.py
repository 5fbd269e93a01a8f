"""What a user asked the assistant to decide, as the question they would ask about it later ("Choose a code
for my garage door." -> "What code did you choose for my garage door?"). The answer is the assistant's
reply (`questions.asks_what_you_said`); English word order, no relation and no model.
"""

from __future__ import annotations

import itertools
import re

from trainer.chat import Messages
from trainer.episodes import answered_request, suggests, told
from trainer.statements import LEAD
from trainer.text import clauses, owner_lower

POLITE = (r"(?:(?:please|could you|can you|would you|will you|help me|now|let's|let us|"
           r"(?:i|we)\s*(?:want|need|'d like|would like)\s+you\s+to)\s+)*")
_ASK_VERB = r"come up with|think of|think up|decide on|make up|dream up|suggest|pick|choose|recommend|find|propose|invent|" \
            r"make|plan|write|create|draft|name|give|get|set"
# "Can you suggest a name for my new kitten?" -> "What name did you suggest for my new kitten?"
_ASKED_FOR = re.compile(rf"^{POLITE}(?P<verb>{_ASK_VERB})\s+(?:me\s+|us\s+)?(?:a|an|the|some)\s+(?:good\s+|nice\s+)?"
                        rf"(?P<thing>\w+(?:\s+\w+){{0,2}}?)\s+(?P<prep>for|to)\s+(?P<rest>.+?)(?:,?\s*please)?[.?!]*$",
                        re.IGNORECASE)
# a kind of thing asked for, for nothing named: "Can you recommend a podcast about history?", "Suggest me a
# good film." -> "Which podcast did you recommend?"
_ASKED_KIND = re.compile(rf"^{POLITE}(?P<verb>recommend|suggest|pick|choose|find)\s+(?:me\s+|us\s+)?(?:a|an|some)\s+"
                         rf"(?:good\s+|nice\s+|great\s+)?(?P<thing>\w+)(?:\s+(?P<about>(?:about|on|with|by|from|like)"
                         rf"\s+[^?,.!]+?))?(?:,?\s*please)?[.?!]*$", re.IGNORECASE)
# "What should I cook for the potluck?" -> "What did you suggest I cook for the potluck?"; a kind of two words:
# "Which board game should we play tonight?"
_SHOULD = re.compile(r"^(?P<wh>(?:what|which)(?:\s+\w+){0,2}?|where|who|when|how(?:\s+many\s+\w+|\s+much|\s+long)?)"
                     r"\s+(?:should|could|can)\s+(?P<who>i|we|(?:the|my|our)\s+\w+)\s+(?P<rest>[^?]+?)\?*$",
                     re.IGNORECASE)
# "I can't decide what to cook tonight.", "Not sure where we should go" ask as "What should I cook tonight?"
_UNSURE = re.compile(r"^(?:(?P<who>i|we)\s*(?:can't|cannot|don't|do\s+not|'m\s+not|am\s+not|'re\s+not|are\s+not)\s+"
                     r"(?:decide|know|figure\s+out|sure)|(?:any\s+)?(?:ideas|suggestions|tips|thoughts)|no\s+idea|"
                     r"not\s+sure|help\s+me\s+(?:decide|figure\s+out)|(?:remind|tell)\s+(?:me|us))\s+"
                     r"(?:(?:on|for|about)\s+)?"
                     r"(?P<wh>what|which(?:\s+\w+){1,2}?|where|who|when)\s+"
                     r"(?:(?P<should>i|we)\s+should|to)\s+(?P<rest>.+?)[.?!]*$", re.IGNORECASE)
# a choice between two: "I'm torn between Lisbon and Porto for the weekend.", "Should I get the red or the green sofa?"
_EITHER = re.compile(r"^(?:should\s+(?:i|we)\s+(?:go\s+with|pick|choose|get|take|buy|book)\s+|"
                     r"(?:i'm|i\s+am|we're|we\s+are)\s+torn\s+between\s+|(?:i|we)\s+can't\s+choose\s+between\s+)"
                     r"(?P<a>[^,?]+?)\s+(?:or|and)\s+(?P<b>[^,?]+?)(?:\s+for\s+(?P<rest>[^,?]+?))?[.?!]*$", re.IGNORECASE)
# "What do you think I should name my bike?" asks as "What should I name my bike?" does
_THINK = re.compile(r"^((?:what|which|where|who|when|how)(?:\s+\w+){0,2}?)\s+do\s+you\s+think\s+(i|we)\s+should\b",
                    re.IGNORECASE)
# "Which restaurant do you recommend for our anniversary?", "Any hotel you'd recommend in Pelbrook?"
_YOU_RECOMMEND = re.compile(r"^(?:any|which|what)\s+(?P<thing>\w+(?:\s+\w+)?)\s+(?:would\s+you|do\s+you|you'd|can\s+you|"
                            r"could\s+you)\s+(?P<verb>recommend|suggest|pick|choose)\s*(?:(?P<prep>for|in|to|at|near)"
                            r"\s+(?P<rest>[^?]+?))?[.?!]*$", re.IGNORECASE)
# "Which day works best for the launch party?"
_WORKS_BEST = re.compile(r"^(?:which|what)\s+(?P<thing>\w+)\s+(?:works|would\s+work|is|would\s+be)\s+best\s+"
                         r"(?P<prep>for|in|to|at)\s+(?P<rest>[^?]+?)[.?!]*$", re.IGNORECASE)
# "Which wine goes with the lamb tonight?", "What would go well with salmon?"
_GOES_WITH = re.compile(r"^(?:which|what)\s+(?P<thing>\w+)\s+(?:goes|would\s+go|will\s+go|go)\s+(?:well\s+|best\s+)?"
                        r"with\s+(?P<rest>[^?]+?)[.?!]*$", re.IGNORECASE)
# "Any good book for the flight?", "Any nice restaurants near the station?" (not "Any tips for ...": advice)
_ANY_GOOD = re.compile(r"^any\s+(?:good|nice|decent|great)\s+(?P<thing>\w+(?:\s+\w+)?)\s+(?P<prep>for|near|in|to)\s+"
                       r"(?P<rest>[^?]+?)[.?!]*$", re.IGNORECASE)
# "We're driving to the coast, any stops worth making?", "Any cafés you'd recommend?"
_ANY_WORTH = re.compile(r"^any\s+(?P<thing>\w+)\s+(?:worth|you'd|you\s+would)\b[^?]*?[.?!]*$", re.IGNORECASE)
# "Plan my Saturday in town, please." -> "What did you plan for my Saturday in town?"
_PLAN_MY = re.compile(rf"^{POLITE}(?P<verb>plan|organi[sz]e|schedule|map\s+out)\s+(?P<rest>(?:my|our|the)\s+[\w\s'-]+?)"
                      rf"(?:,?\s*please)?[.?!]*$", re.IGNORECASE)
# "What should my wifi password be?" -> "What did you suggest for my wifi password?"
_SHOULD_BE = re.compile(r"^(?:what|(?:which|what)\s+(?P<kind>\w+))\s+should\s+(?P<np>(?:my|our|the)\s+[\w\s'-]+?)\s+be[.?!]*$", re.IGNORECASE)
# "What would you call a robot butler?"
_YOU_CALL = re.compile(r"^what\s+would\s+you\s+(?:call|name)\s+(?P<rest>[^?]+?)[.?!]*$", re.IGNORECASE)
# "Give our book club a name, please." -> "What name did you give our book club?"
_GIVE_A = re.compile(rf"^{POLITE}(?P<verb>give|find|pick|choose)\s+(?P<rest>(?:my|our|the)\s+[\w\s'&-]+?)\s+(?:a|an)\s+"
                     rf"(?P<thing>\w+)(?:,?\s*please)?[.?!]*$", re.IGNORECASE)


# a need stated, then asked about: "I need a dish for the potluck. Any idea?" / "Our quiz team needs a name."
_NEED = re.compile(r"^(?:(?P<whose>(?:my|our)\s+\w+)\s+(?:wants|needs)|(?P<bare>need)|(?:i|we)\s*(?:need|want|(?:'d|would)\s+(?:love|like)|"
                   r"(?:am|are|'m|'re)\s+(?:looking\s+for|stuck\s+on))|"
                   r"(?:(?:i|we)\s+)?(?:can't|cannot)\s+(?:decide\s+on|think\s+of|come\s+up\s+with)|"
                   r"what's|what\s+is|"
                   r"what\s+would\s+be|"
                   r"any\s+ideas\s+for|got)\s+(?:a|an|some)\s+(?:good\s+|nice\s+|new\s+)?"
                   r"(?P<thing>\w+(?:\s+\w+){0,2}?)\s+(?P<prep>for|to)\s+(?P<rest>.+?)[.?!]*$", re.IGNORECASE)
# "a password hint idea": the thing asked for is the hint
_IDEA = re.compile(r"\s+(?:idea|ideas|suggestion|suggestions|option|options)$")
_NEEDS_A = re.compile(r"^(?P<rest>(?:my|our|the)\s+[\w\s'-]+?)\s+needs\s+(?:a|an)\s+(?:good\s+|new\s+)?(?P<thing>\w+(?:\s+\w+)?)[.?!]*$",
                      re.IGNORECASE)
# "Any thoughts on what to call my boat?", "Help me decide what to name our band."
_WHAT_TO_CALL = re.compile(r"\bwhat\s+to\s+(?P<verb>call|name)\s+"
                           r"(?P<rest>(?:my|our|the)\s+[\w\s'-]+?)[.?!]*$", re.IGNORECASE)
# "Name suggestions for my golden retriever?", "Gift ideas for my dad?"
_IDEAS_FOR = re.compile(r"^(?:any\s+)?(?!any\b)(?P<thing>\w+(?:\s+\w+)?)\s+(?:ideas|suggestions|options)\s+"
                        r"(?P<prep>for|to)\s+(?P<rest>[^?]+?)[.?!]*$", re.IGNORECASE)
# "Any ideas for a wifi network name?", "Suggestions for a name for my boat?"
_IDEAS_FOR_A = re.compile(r"^(?:any\s+)?(?:ideas|suggestions|thoughts)\s+(?:for|on)\s+(?:a|an|some)\s+"
                          r"(?:good\s+|new\s+)?(?P<thing>\w+(?:\s+\w+){0,2}?)(?:\s+(?P<prep>for|to)\s+(?P<rest>[^?]+?))?[.?!]*$",
                          re.IGNORECASE)
# small talk's last word is not the request's: "what should i name my goldfish lol"
_CHATTER = re.compile(r"(?:\s+(?:lol|haha+|lmao|tbh|xx|:\)|:d))+(?=[.?!]*$)", re.IGNORECASE)
# "I need help naming my Etsy shop, it sells candles." -> "What name did you suggest for my Etsy shop?"
_HELP_NAMING = re.compile(r"^(?:(?:i|we)\s*(?:need|want|could\s+use|'d\s+like)\s+(?:some\s+)?help|help\s+me)\s+"
                          r"(?:with\s+)?(?:naming|to\s+name|name)\s+(?P<rest>(?:my|our|the)\s+[\w\s'-]+?|it|him|her|them)"
                          r"[.?!]*$",
                          re.IGNORECASE)
# "Decide where we should go for dinner.", "Tell me what I should cook." -> asked as "Where should we go ...?"
_DECIDE_WH = re.compile(r"^(?:(?:please|could you|can you|help me)\s+)*"
                        r"(?:decide|tell\s+(?:me|us)|choose|pick)\s+"
                        r"(?P<wh>what|which|where|who|when)(?P<noun>(?:\s+\w+){1,2}?)?\s+(?P<who>i|we)\s+should\s+",
                        re.IGNORECASE)
# "Name the villain for me." -> "What did you name the villain?"
_NAME_THE = re.compile(rf"^{POLITE}name\s+(?P<rest>(?:my|our|the)\s+[\w\s'-]+?)(?:\s+for\s+(?:me|us))?[.?!]*$",
                       re.IGNORECASE)
# what a request's "it" stands for, told just before: "I just got a kitten." -> "my kitten"
_GOT_A = re.compile(r"\b(?P<who>i|we)\b.*?\b(?:got|adopted|bought|have|planning|writing|building|"
                    r"organi[sz]ing|started|starting|opening|launching|running|hosting|throwing)\s+(?:a|an)\s+"
                    r"(?:new\s+)?"
                    r"(?P<thing>[\w'-]+(?:\s+[\w'-]+){0,3}?)(?:\s*[.!,]|\s+(?:and|but|so)\b)", re.IGNORECASE)
# or told as theirs: "Our new puppy is a girl. What should we call her?"
_OURS = re.compile(r"^(?P<whose>my|our)\s+(?:new\s+)?(?P<thing>[a-z]+)\s+(?:is|was|'s)\b", re.IGNORECASE)
# a kind of thing the user is after, asked for bare next: "Thinking of a new hobby. What would you suggest?"
_LOOKING = re.compile(r"\b(?:thinking\s+(?:of|about)|looking\s+for|in\s+the\s+market\s+for)\s+(?:getting\s+|trying\s+)?"
                      r"(?:a|an|some)\s+(?:new\s+|good\s+)?(?P<thing>[a-z]+)\b", re.IGNORECASE)
_BARE_ASK = re.compile(r"^(?:what\s+(?:would|do|could)\s+you\s+(?:suggest|recommend)|any\s+(?:ideas|suggestions|"
                       r"thoughts|recommendations)|ideas|suggestions|thoughts|help)\??[.?!]*$", re.IGNORECASE)
# "and need a team name", "Name ideas?": a thing asked for with what it is for told before ("hosting a quiz night")
_BARE_NEED = re.compile(r"^(?:and\s+)?(?:(?:i|we)\s*)?(?:need|want|'d\s+like)\s+(?:a|an|some)\s+(?:good\s+|new\s+)?"
                        r"(?P<thing>\w+(?:\s+\w+)?)[.?!]*$|^(?:any\s+)?(?P<kind>\w+)\s+(?:ideas|suggestions)\??[.?!]*$",
                        re.IGNORECASE)
_WHOSE = {"it", "him", "her", "them", "my", "our", "the", "his", "their"}
_THING_ENDS = {"last", "this", "yesterday", "today", "recently", "on", "in", "at", "for", "from", "and", "but", "with", "so"}
_VAGUE_OBJECT = re.compile(r"\s+(?:it|them|him|her|one|this|that)$", re.IGNORECASE)


def request_questions(messages: Messages) -> list[str]:
    """What the user asked the assistant for, as the question they would ask about it later: "Choose a code
    for my garage door." -> "What code did you choose for my garage door?". Its answer is the assistant's
    reply (`asks_what_you_said`). Only a request the assistant answered is turned.

    Each is asked in the request's own verb and as the user may recall it later: "Which code did you pick
    for ...?" and "What code did you suggest for ...?". One phrasing taught alone was not recalled when the
    question later came with another verb (dev set A: "Choose a code" trained, "Which code did you pick"
    asked, not recalled)."""
    out: list[str] = []
    earlier: dict[int, str] = {}  # per turn, the thing told so far that an "it" may stand for ("my kitten")
    sought: dict[int, str] = {}  # per turn, the kind of thing the user said they are after ("a new hobby")
    asked_in: set[int] = set()  # the turns a sentence was read as a request of
    for t in told(messages):
        if t.role != "user" or not answered_request(messages, t.turn):
            continue
        sentence = LEAD.sub("", t.text.strip())
        got, ours, looking = _GOT_A.search(sentence), _OURS.match(sentence), _LOOKING.search(sentence)
        if got:
            owner, thing = _owned(got)
            earlier[t.turn] = f"{owner} {thing}"
        elif ours:
            earlier[t.turn] = f"{ours['whose'].lower()} {ours['thing'].lower()}"
        if looking:
            sought[t.turn] = looking["thing"].lower()
        if _BARE_ASK.match(sentence) and t.turn in sought and t.turn not in asked_in:
            # "Thinking of a new hobby. What would you suggest?" (not "We're looking for a venue for the
            # wedding. Ideas?": asked already)
            out += [f"Which {sought[t.turn]} did you suggest?", f"What {sought[t.turn]} did you recommend?"]
            continue
        found = _asked(sentence, earlier.get(t.turn))
        if found:
            asked_in.add(t.turn)
        out += found
    return list(dict.fromkeys(out))


# what an unasked suggestion names: "(try the tarts at) a (bakery) called Velmora", "call (the routine) Fernday"
_SUGGESTED_KIND = re.compile(r"\b(?:a|an|the)\s+(?:[\w'-]+\s+){0,2}?(?P<noun>[a-z][\w'-]*)\s+(?:called|named)\s+[A-Z\d\"']")
# or names it right after its kind: "You might enjoy the novel Ashes of Corvel", "I'd try the app Fenly"
_SUGGESTED_TITLE = re.compile(r"\b(?:a|an|the)\s+(?P<noun>[a-z][\w'-]*)\s+[\"']?[A-Z]")
_DESCRIBING = {"new", "great", "good", "nice", "little", "small", "big", "lovely", "local", "popular", "classic",
               "famous", "old", "cosy", "cozy", "cute", "fun", "quick", "short", "long", "best", "same"}
# or names it with its kind: "You could visit the Haldane Museum", "eat at Trattoria Belmonte"
_PLACE_KINDS = ("Museum|Gallery|Park|Gardens|Garden|Beach|Falls|Lake|Castle|Cathedral|Tower|Market|Library|Theatre|"
                "Theater|Cinema|Hotel|Inn|Hostel|Restaurant|Trattoria|Bistro|Brasserie|Café|Cafe|Bakery|Pub|Bar|"
                "Pool|Gym|Centre|Center|Studio|Shop|Bookshop|Zoo|Aquarium|Festival")
_SUGGESTED_PLACE = re.compile(rf"\b(?:(?:[A-Z][\w'-]+\s+)+(?P<last>{_PLACE_KINDS})|"
                              rf"(?P<first>{_PLACE_KINDS})(?:\s+[A-Z][\w'-]+)+)\b")
# "I'm starting a book club." -> "You could call it the Page Turners.": what "it" is, told just before
_CALL_IT = re.compile(r"\b(?:call|name)\s+it\s+[\"']?(?:the\s+)?[A-Z]")
_SUGGESTED_NAME = re.compile(r"\b(?:call|name)\s+(?P<what>(?:the|your)\s+[a-z][\w' -]*?)\s+[\"']?[A-Z]")


def suggestion_questions(messages: Messages) -> list[str]:
    """What the assistant recommended unasked (`episodes.suggests`), as the user would ask about it later:
    "Try the tarts at a bakery called Velmora." or "You might enjoy the novel Ashes of Corvel." -> "Which
    bakery (novel) did you recommend?"; "Let's call the routine Fernday." -> "What name did you suggest for
    the routine?". "Try Quizlo." asks nothing: "What did you suggest I try?" of two episodes trained two
    answers to one question (memory-dev-b: night 2's "Try Obrkedull" answered with night 1's "Try Fyrwyn")."""
    out: list[str] = []
    for t in told(messages):
        if t.role != "assistant" or not suggests(messages[t.turn]):
            continue
        naming = list(_SUGGESTED_NAME.finditer(t.text))
        nouns = [m["noun"] for m in _SUGGESTED_KIND.finditer(t.text)] or ([] if naming else [  # "call the routine X"
            m["noun"] for m in _SUGGESTED_TITLE.finditer(t.text) if m["noun"] not in _DESCRIBING]) or [
            (m["last"] or m["first"]).lower() for m in _SUGGESTED_PLACE.finditer(t.text)]
        if _CALL_IT.search(t.text) and (it := _thing_before(messages, t.turn)):
            out += [f"What did you suggest calling {it}?", *_recalled_as("name", it)]
        for noun in nouns:
            out += [f"Which {noun} did you recommend?", f"What {noun} did you suggest?"]
        for match in naming:
            what = re.sub(r"^your\b", "my", match["what"])
            out += [f"What did you suggest calling {what}?", *_recalled_as("name", what)]
    return list(dict.fromkeys(out))


def _thing_before(messages: Messages, turn: int) -> str | None:
    """What the user told they have or are starting in the turn before `turn` ("I'm starting a book club."
    -> "my book club"), as `request_questions` reads an "it"."""
    users = [m for m in messages[:turn] if m["role"] == "user"]
    got = _GOT_A.search(LEAD.sub("", users[-1]["content"].strip())) if users else None
    if not got:
        return None
    owner, thing = _owned(got)
    return f"{owner} {thing}" if thing else None


def _owned(got: re.Match) -> tuple[str, str]:
    """Whose thing `_GOT_A` found and the thing itself, cut before the words that end it: "I got a kitten
    last week" -> ("my", "kitten")."""
    thing = itertools.takewhile(lambda w: w not in _THING_ENDS, got["thing"].lower().split())
    return "my" if got["who"].lower() == "i" else "our", " ".join(thing)


def _needed(sentence: str, it: str | None) -> list[str]:
    """A thing asked for bare, for what the turn told before: "We're hosting a quiz night and need a team
    name." -> "What team name did you suggest for our quiz night?"; "I'm opening a coffee shop. Name ideas?"."""
    match = _BARE_NEED.match(sentence)
    if not match or not it:
        return []
    return _recalled_as((match["thing"] or match["kind"]).lower(), it)


def _asked(sentence: str, it: str | None) -> list[str]:
    """The questions one sentence of a request is recalled by; `it`: what a vague "it" stands for. A sentence
    not read whole is read clause by clause ("Give my neighbour a nickname, something fun.", "Hey, could
    you pick a name for my cat?", "I'm opening a bakery and can't think of a name for it.")."""
    sentence = _CHATTER.sub("", sentence)
    parts = clauses(sentence)
    for clause in [sentence, *(parts if len(parts) > 1 else [])]:
        asked = _asked_whole(clause, it) or _needed(clause, it)
        if asked:
            return asked
    return []


def _as_should(sentence: str) -> str:
    """A decision asked around its question, as the question: "What do you think I should name my bike?" ->
    "What should I name my bike?", "Decide where we should go." -> "Where should we go?", "I can't decide
    what to cook tonight." -> "What should I cook tonight?"."""
    unsure = _UNSURE.match(sentence)
    if unsure:
        return f"{unsure['wh']} should {unsure['should'] or unsure['who'] or 'I'} {unsure['rest']}?"
    decide = _DECIDE_WH.match(sentence)
    if decide:
        rest = sentence[decide.end():].rstrip(".!? ")
        return f"{decide['wh']}{decide['noun'] or ''} should {decide['who']} {rest}?"
    return _THINK.sub(r"\1 should \2", sentence)


def _asked_whole(sentence: str, it: str | None) -> list[str]:
    """The questions a whole sentence (or clause) of a request is recalled by: a thing asked for
    (`_asked_for`), else a decision asked around its question (`_asked_around`); [] when it is neither."""
    return _asked_for(sentence, it) or _asked_around(sentence, it)


def _asked_for(sentence: str, it: str | None) -> list[str]:
    """A thing asked for by its kind: "Name the villain.", "Suggest a name for my kitten.", "I need a dish for
    the potluck.", "Which restaurant do you recommend for ...?", "Plan my Saturday.", "What should my wifi
    password be?"."""
    match = _NAME_THE.match(sentence)
    if match:
        rest = owner_lower(match["rest"])
        return [f"What did you name {rest}?", *_recalled_as("name", rest)]
    match = _ASKED_FOR.match(sentence) or _NEED.match(sentence)
    if match and match.groupdict().get("bare") and match["rest"].split()[0].lower() not in _WHOSE:
        match = None  # "need a break for sure" asks nothing; "Need a name for it." does
    if match:
        # what it is for, without a clause after it ("for our lunch, somewhere we haven't been")
        thing, rest = _IDEA.sub("", match["thing"].lower()), match["rest"].split(",")[0].strip()
        if it and _VAGUE_OBJECT.search(f" {rest}") and len(rest.split()) == 1:
            rest = it  # "I'm opening a bakery and can't think of a name for it." -> "for my bakery"
        if match.groupdict().get("whose"):  # "My daughter wants a name for her friend": my daughter's friend
            rest = re.sub(r"^(?:his|her|their)\b", f"{owner_lower(match['whose'])}'s", rest, flags=re.IGNORECASE)
        verb = match.groupdict().get("verb")
        own = [f"What {thing} did you {verb.lower()} {match['prep'].lower()} {rest}?"] if verb else []
        prep = "to" if match["prep"].lower() == "to" and rest.split()[0].lower() not in _WHOSE else "for"
        return [*own, *_recalled_as(thing, rest, prep)]  # "a time to meet my mentor": to, not "for meet"
    match = _ASKED_KIND.match(sentence)
    if match:
        thing, verb = _singular(match["thing"].lower()), match["verb"].lower()
        about = [f"Which {thing} {match['about']} did you {verb}?"] if match["about"] else []
        return [*about, f"Which {thing} did you {verb}?", f"What {thing} did you suggest?"]
    match = _YOU_RECOMMEND.match(sentence) or _WORKS_BEST.match(sentence)
    if match:
        thing, prep = match["thing"].lower(), (match["prep"] or "").lower()
        rest = (match["rest"] or "").split(",")[0].strip()
        verb = match.groupdict().get("verb")
        own = [f"Which {thing} did you {verb.lower()} {prep} {rest}".rstrip() + "?"] if verb else []
        return [*own, *(_recalled_as(thing, rest, prep) if rest else [])]
    match = _GOES_WITH.match(sentence) or _ANY_GOOD.match(sentence)
    if match:
        thing, rest = _singular(match["thing"].lower()), match["rest"].split(",")[0].strip()
        return _recalled_as(thing, rest, (match.groupdict().get("prep") or "for").lower())
    match = _ANY_WORTH.match(sentence)
    if match:
        thing = _singular(match["thing"].lower())
        return [f"Which {thing} did you recommend?", f"What {thing} did you suggest?"]
    match = _PLAN_MY.match(sentence)
    if match:
        rest = owner_lower(match["rest"])
        return [f"What did you {match['verb'].lower()} for {rest}?", f"What did you suggest for {rest}?"]
    match = _SHOULD_BE.match(sentence)
    if match:
        np = owner_lower(match["np"])
        kind = [f"What {match['kind'].lower()} did you suggest for {np}?"] if match["kind"] else []
        return [f"What did you suggest for {np}?", f"What did you say {np} should be?", *kind]
    match = _YOU_CALL.match(sentence)
    if match:
        return [f"What did you call {match['rest']}?", *_recalled_as("name", match["rest"])]
    return []


def _asked_around(sentence: str, it: str | None) -> list[str]:
    """A decision asked around its question: "What should I name my bike?", "I'm torn between Lisbon and
    Porto", "Give our book club a name.", "Our team needs a mascot.", "Gift ideas for my dad?", "Any thoughts
    on what to call my boat?"."""
    match = _SHOULD.match(_as_should(sentence))
    if match:
        wh, who, rest = match["wh"].lower().capitalize(), match["who"].lower(), match["rest"].split(",")[0].strip()
        subject, obj = {"i": ("I", "me"), "we": ("we", "us")}.get(who, (who, who))
        naming = []
        if it and (_VAGUE_OBJECT.search(rest) or len(rest.split()) == 1):
            # "I just got a kitten. What should I call it?" -> "What did you suggest I call my kitten?"
            if rest.split()[0].lower() in ("call", "name"):
                naming = _recalled_as("name", it)
            rest = f"{_VAGUE_OBJECT.sub('', rest)} {it}"
        elif rest.split()[0].lower() in ("call", "name") and len(rest.split()) > 1 and not _VAGUE_OBJECT.search(rest):
            naming = _recalled_as("name", rest.split(maxsplit=1)[1])  # "What should I name my bike?"
        return [f"{wh} did you suggest {subject} {rest}?", f"{wh} did you tell {obj} to {rest}?", *naming]
    match = _EITHER.match(sentence)
    if match:
        a, b = match["a"], match["b"]
        return [f"Which did you suggest, {a} or {b}?", f"Which did you pick, {a} or {b}?",
                *([f"What did you suggest for {match['rest']}?"] if match["rest"] else [])]
    match = _GIVE_A.match(sentence)
    if match:
        thing, verb = match["thing"].lower(), match["verb"].lower()
        return [f"What {thing} did you {verb} {match['rest']}?", *_recalled_as(thing, match["rest"])]
    match = _NEEDS_A.match(sentence)
    if match:
        return _recalled_as(match["thing"].lower(), owner_lower(match["rest"]))
    match = _IDEAS_FOR.match(sentence)
    if match:
        thing, rest = match["thing"].lower(), match["rest"].split(",")[0].strip()
        return _recalled_as(thing, rest, match["prep"].lower())
    match = _IDEAS_FOR_A.match(sentence)
    if match:
        thing = match["thing"].lower()
        if match["rest"]:
            return _recalled_as(thing, match["rest"].split(",")[0].strip(), match["prep"].lower())
        return [f"Which {thing} did you pick?", f"What {thing} did you suggest?"]
    match = _HELP_NAMING.match(sentence)
    if match and (vague := _VAGUE_OBJECT.fullmatch(f" {match['rest']}")) and not it:
        return []  # "Help me name it." of nothing told before
    if match:  # "I got a new guitar! Help me name it.": my guitar
        return _recalled_as("name", it if vague else owner_lower(match["rest"]))
    match = _WHAT_TO_CALL.search(sentence)
    if match:
        rest = owner_lower(match["rest"])
        return [f"What did you suggest I {match['verb'].lower()} {rest}?", *_recalled_as("name", rest)]
    return []


def _recalled_as(thing: str, purpose: str, prep: str = "for") -> list[str]:
    """A decision asked in the verbs a user recalls it with, whatever verb the request used."""
    return [f"Which {thing} did you pick {prep} {purpose}?", f"What {thing} did you suggest {prep} {purpose}?"]


def _singular(thing: str) -> str:
    """"restaurants" -> "restaurant": a question recalls the one suggested ("Which restaurant did you pick?")."""
    return thing[:-1] if thing.endswith("s") and not thing.endswith("ss") and len(thing) > 3 else thing
