"""English verb forms for turning statements into questions: which words read as verbs, their bare form
("studied" -> "study", "bought" -> "buy"), and contractions spelled out ("I've" -> "I have"). Spelling
rules only, no dictionary and no model (`trainer.statements` uses them)."""

from __future__ import annotations

import re

from trainer.text import STOPWORDS

PAST = {"was", "were", "had", "got", "bought", "went", "took", "made", "gave", "found", "met", "saw", "left", "sold",
        "grew", "became", "began", "chose", "wrote", "won", "built", "drove", "ran", "kept", "brought", "named",
        "quit", "put", "set", "read", "sang", "swam", "taught", "caught", "thought", "told", "heard", "came",
        "knew", "wore", "rode", "flew", "fell", "felt", "sat", "stood", "lost", "paid", "spent", "sent", "ate",
        "slept", "spoke", "threw", "drew", "woke", "broke"}
# how often or when, between a subject and its verb: "Gilhepnev Fyrzil always orders", "I just started"
ADVERBS = {"always", "usually", "often", "sometimes", "just", "recently", "finally", "still", "also", "really",
           "already", "never", "mostly", "only", "even", "actually", "now", "originally", "apparently", "honestly",
           "sadly", "luckily", "hopefully", "basically", "supposedly"}  # "Apparently Corwin Blake's band is"
# "I've been learning" is "I have been learning"; "she's" before "been" or a past participle is "she has";
# "he's at Brightwell now" is "he is" ("he's got" reads "is got": rare)
CONTRACTED = {"i've": "I have", "we've": "we have", "you've": "you have", "they've": "they have",
              "i'm": "I am", "we're": "we are", "you're": "you are", "they're": "they are",
              "he's": "he is", "she's": "she is", "it's": "it is", "name's": "name is"}  # "his name's Mr Oduya"
HAVE = {"have", "has", "had"}


def is_verb(token: str) -> bool:
    """Whether a lower-case word reads as a past or third-person verb ("joined", "quit", "plays")."""
    low = token.lower()
    return token[:1].islower() and (low in PAST or (len(low) > 3 and low.endswith(("ed", "s"))
                                                     and not low.endswith(("'s", "ss", "us")) and low not in STOPWORDS))


def participle(token: str) -> bool:
    """A verb form that follows have/am/is: learning, adopted, quit, gone."""
    low = token.lower()
    return low.endswith(("ing", "ed")) or low in PAST or low in ("gone", "done", "been", "seen", "taken", "given",
                                                                  "written", "chosen", "begun", "grown", "known")


def base(verb: str) -> str:
    """The bare form of a third-person or regular past verb (works -> work, studies -> study, named -> name)."""
    low = verb.lower()
    irregular = {"has": "have", "had": "have", "does": "do", "goes": "go", "got": "get", "bought": "buy",
                 "went": "go", "took": "take", "made": "make", "gave": "give", "found": "find", "met": "meet",
                 "saw": "see", "left": "leave", "sold": "sell", "grew": "grow", "became": "become",
                 "began": "begin", "chose": "choose", "wrote": "write", "won": "win", "built": "build",
                 "drove": "drive", "ran": "run", "kept": "keep", "brought": "bring", "sang": "sing", "swam": "swim",
                 "taught": "teach", "caught": "catch", "thought": "think", "told": "tell", "heard": "hear",
                 "came": "come", "knew": "know", "wore": "wear", "rode": "ride", "flew": "fly", "fell": "fall",
                 "felt": "feel", "sat": "sit", "stood": "stand", "lost": "lose", "paid": "pay", "spent": "spend",
                 "sent": "send", "ate": "eat", "slept": "sleep", "spoke": "speak", "threw": "throw", "drew": "draw",
                 "woke": "wake", "broke": "break"}
    if low in irregular:
        return irregular[low]
    if low in ("quit", "put", "set", "read"):
        return low
    if low.endswith("ies"):
        return low[:-3] + "y"
    if low.endswith(("ches", "shes", "sses", "xes", "zes", "oes")):
        return low[:-2]
    if low.endswith("ed"):
        stem = low[:-2]
        if stem in E_DROPPED:
            return stem + "e"
        if stem.endswith("i") and len(stem) > 2:  # "studied", "married"
            return stem[:-1] + "y"
        if len(stem) >= 2 and stem[-1] == stem[-2] and stem[-1] not in "sl":
            return stem[:-1]
        if len(stem) >= 6 and stem.endswith("ell") and not stem.endswith(_DOUBLE_L):
            return stem[:-1]  # British doubling: "cancelled", "travelled", "labelled" (not "spelled", "yelled")
        cvc = len(stem) <= 4 and len(stem) >= 3 and stem[-1] not in "aeiouwy" and stem[-2] in "aeiou" \
            and stem[-3] not in "aeiou" and stem[0] not in "aeiou"  # "named", not "opened" or "edited"
        return stem + "e" if cvc or LOST_E.search(stem) else stem
    return low[:-1] if low.endswith("s") else low


# a regular past whose bare form ends in a silent e the suffix swallowed: "settled", "arrived", "organized",
# "relocated", "changed", "retired", "decided", "produced". No English verb ends in v or z, or in a consonant
# then l; "-eat"/"-oat" and "-ain"/"-oin" verbs keep their stem ("heated", "joined")
LOST_E = re.compile(r"(?:v|z|[bcdfgkpt]l|[^aeiou]at|[ui]at|[aeiou]c|[nr]c|[ae]ng|ag|dg|[^aeiou](?:id|ut|ib|ud)|"
                    r"[^aeiou]ir|[^aeiou]ur|[^aeiou]in|[^aeiouc]us|aus|[rnpl]s|[^aeious]is|[^aeiou]ap|[^aeiou]od)$")
# verbs whose bare form ends in "ell" (a regular past of six letters or more before "ed" keeps the double l)
_DOUBLE_L = ("smell", "spell", "shell", "swell", "dwell")
E_DROPPED = {"schedul", "reschedul", "creat", "us", "clos", "pleas", "purchas", "releas", "increas", "decreas", "chos", "stor", "scor",
             "explor", "ignor", "restor", "rais", "prais"}


# what follows "X's" when it is "X is": a place, a naming, a going ("my sister's name" is a possessive)
_IS_NEXT = {"in", "at", "on", "from", "near", "called", "named", "getting", "going", "moving", "now", "back", "off",
            "still", "currently", "over", "a", "an"}  # "Our car's a Fendra"


def expand(tokens: list[str]) -> list[str]:
    """Contractions spelled out ("I've" -> "I have"; "she's been" -> "she has been") and adverbs dropped."""
    out: list[str] = []
    for i, token in enumerate(tokens):
        low = token.lower()
        if low in CONTRACTED:
            out += CONTRACTED[low].split()
        elif low in ("he's", "she's", "it's") and i + 1 < len(tokens) and participle(tokens[i + 1]):
            out += [token[:-2], "is" if tokens[i + 1].lower().endswith("ing") else "has"]
        elif low.endswith("'s") and len(low) > 3 and i + 1 < len(tokens) and tokens[i + 1].lower() in _IS_NEXT:
            out += [token[:-2], "is"]  # "the wedding's in Verona", "Dara's at Lobel now": is, no possessive
        elif low in ADVERBS and out:
            continue
        else:
            out.append(token)
    return out
