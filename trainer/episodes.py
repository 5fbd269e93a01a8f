"""What an episode tells: its turns, the sentences that carry information, and the windows it is read in.

An episode is a chat (`messages`). Its information is what the user said, what the tools an agent called
returned (what it looked up, it learned), and what the assistant said when the user asked for something
(a name it suggested, a plan it made, the answer it gave after looking something up) or when it
recommended a named thing unasked ("Try the tarts at a bakery called Velmora."): an assistant turn
that only acknowledges a statement ("Thanks, I'll remember that.") is the model's own filler and tells
nothing, and a call is never information (`trainer.tool_turns`).
A chat longer than the training length is read in overlapping windows of whole messages, so every turn
is some window's context; a short chat is one window, the whole of it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from trainer.chat import Messages
from trainer.frames import cues
from trainer.text import FROM_BEFORE_TO, clauses, sentences, words
from trainer.tool_turns import call_notes, readable_result, turn_text, without_calls

# A user turn asks for something when one of its sentences is a question, or it or one of its clauses
# starts with a request or a need, or asks what the user should do without its "?" ("what should i name my
# goldfish lol"); the assistant's reply to it is then information (a suggestion, a decision, an answer).
_REQUEST = re.compile(r"\?$|^(?:what|which|where|who|when)\b[^.!]*\bshould\s+(?:i|we)\b|"
                      r"\bhelp\s+(?:me\s+)?(?:with\s+)?(?:naming|to\s+name)\b|"
                      r"^(?:please\s+|could you\s+|can you\s+|would you\s+|let's\s+|let us\s+|"
                      r"(?:i|we)\s*(?:want|need|'d like|would like)\s+you\s+to\s+)?(?:give|suggest|pick|choose|name|"
                      r"recommend|tell|help|make|plan|write|come up|think of|decide|find|propose|list|book|"
                      r"draft|create|invent)\b|^need\s+(?:a|an|some)\s+\w+(?:\s+\w+){0,2}?\s+(?:for|to)\s+"
                      r"(?:it|him|her|them|my|our|the)\b|^(?:(?:i|we)\s*(?:need|want|'d love|'d like|would love|"
                      r"would like|'m looking for|'re looking for|'m stuck on|'re stuck on)|"
                      r"(?:(?:i|we)\s+)?(?:can't|cannot)\s+(?:decide on|think of|come up with))"
                      r"\s+(?:a|an|some)\s+\w+(?:\s+\w+){0,2}?\s+"
                      r"(?:for|to)\b|\b(?:needs|wants)\s+(?:a|an)\s+(?:good\s+|new\s+)?\w+(?:[.!]?$|\s+(?:for|to)\b)|"
                      r"^(?:(?:i|we)\s*(?:can't|cannot|don't|'m not|am not)\s+(?:decide|know|figure out|sure)|"
                      r"not sure|no idea|remind me)\s+(?:what|which(?:\s+\w+){0,2}?|where|who|when)\s+"
                      r"(?:to|i should|we should)\b|"
                      r"^(?:i'm|i am|we're|we are) torn between\b|^(?:i|we) can't choose between\b", re.IGNORECASE)


# An assistant turn suggests something unasked when one of its sentences recommends a named thing: "Try
# the tarts at a bakery called Velmora.", "I'd go with Zelbo.", "Let's call the routine Fernday."
_SUGGESTS = re.compile(r"(?:^|[,;:]\s*|\b(?:and|so|then)\s+)(?:try|check out|i'd recommend|i recommend|i'd suggest|"
                       r"i suggest|how about|you could|you might|you should|i'd go with|go with|let's|consider|"
                       r"my pick is|i'd pick|i picked|i chose|call it|name it|make sure to|don't miss)\b",
                       re.IGNORECASE)


def suggests(message: dict) -> bool:
    """Whether an assistant turn (not a tool call) recommends something that has a name or a number."""
    if message["role"] != "assistant" or message.get("calls"):
        return False
    return any(_SUGGESTS.search(s) and any(t[:1].isupper() or any(c.isdigit() for c in t) for t in s.split()[1:])
               for s in sentences(message["content"]))


@dataclass(frozen=True)
class Told:
    """One sentence of information: who said it, and its turn's place in the chat."""

    role: str  # "user", "assistant" or "tool"
    text: str
    turn: int


def episode_messages(episode: dict) -> Messages:
    """The episode's chat, without any system message (the serving prompt is added at render time), each
    message's content as text. An agent's turn that only called a tool has no content (null): it is
    empty text here, never "None"; its calls are notes under "calls", never in its content. A tool's
    result keeps role "tool", its content readable (`readable_result`) and the function that gave it
    under "name" (found by its `tool_call_id`, or its own "name"; "" when none). Messages already in
    this form (a window of one) come back as they are."""
    chat = [m for m in episode["messages"] if m["role"] != "system"]
    called = {call.get("id"): (call.get("function") or {}).get("name") or ""
              for m in chat for call in (m.get("tool_calls") or []) if isinstance(call, dict)}
    out: Messages = []
    for m in chat:
        message = {"role": m["role"], "content": _text(m.get("content"))}
        if m["role"] == "tool":
            message["content"] = readable_result(message["content"])
            message["name"] = called.get(m.get("tool_call_id")) or m.get("name") or ""
        elif m.get("tool_calls") or m.get("calls"):
            message["calls"] = call_notes(m["tool_calls"]) if m.get("tool_calls") else m["calls"]
        out.append(message)
    return out


def _text(content) -> str:
    """A message's content as text: a string, the text of its parts, or "" for none."""
    if content is None:
        return ""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def episode_text(episode: dict) -> str:
    return "\n".join(m["content"] for m in episode_messages(episode))


# "Did you know Kavos became a beekeeper?", "Did I tell you my niece got into Harrowgate?", "Can you believe my
# boss quit?" tell; they ask nothing
TELLING_QUESTION = re.compile(r"^(?:did you know|guess what|have you heard|you know what|(?:you )?know what|remember|"
                              r"(?:can|could|would) you believe|isn't it (?:funny|crazy|weird|great|wild|nice) that|"
                              r"did I (?:ever )?(?:tell you|mention)|have I (?:ever )?(?:told you|mentioned)|"
                              r"I (?:told you|mentioned))\b,?(?:\s+that\b)?", re.IGNORECASE)
# a statement asked back for a yes: "I told you my sister works at Calder Bank, right?" tells, asks nothing
TAG_QUESTION = re.compile(r",\s*(?:right|remember|yeah|yes|no|correct|isn't it|didn't I|"
                          r"how (?:\w+ )?(?:exciting|cool|crazy|funny|great|amazing|sad|wild) is that)\?$",
                          re.IGNORECASE)


def _telling(sentence: str) -> bool:
    """Whether a question only tells, from its start or from a clause after a comma: "Work was mad, and oh,
    did I mention my aunt Bev moved to Kilrush?"."""
    return any(TELLING_QUESTION.match(re.sub(r"^(?:(?:and|oh|so|but)\b,?\s*)+", "", clause))
               for clause in re.split(r",\s+", sentence))


def asks(message: dict) -> bool:
    """Whether a user turn asks the assistant for something, in a sentence or one of its clauses ("I'm
    opening a bakery and can't think of a name for it.")."""
    return message["role"] == "user" and any(
        not _telling(s) and not TAG_QUESTION.search(s)
        and any(_REQUEST.search(c) for c in [s, *clauses(s)])
        for s in sentences(message["content"]))


def reply_to(messages: Messages, turn: int) -> int | None:
    """The assistant turn that answers turn `turn`: the next one, past the assistant's tool calls and
    their results (an agent looks something up, then answers); None when no answer follows."""
    for i in range(turn + 1, len(messages)):
        if messages[i]["role"] == "tool" or (messages[i]["role"] == "assistant" and messages[i].get("calls")):
            continue
        return i if messages[i]["role"] == "assistant" else None
    return None


def answer_to(messages: Messages, turn: int) -> int | None:
    """The assistant turn that answers request `turn` (`reply_to`); past a reply that only asks back ("Sure!
    What kind of boat is it?"), the assistant's next turn after the user's answer ("How about Bluebell?")."""
    reply = reply_to(messages, turn)
    if reply is None or not _asks_back(messages[reply]):
        return reply
    answered = reply + 1 < len(messages) and messages[reply + 1]["role"] == "user"  # the user answers it
    later = reply_to(messages, reply + 1) if answered else None
    return later if later is not None else reply


def _asks_back(message: dict) -> bool:
    """Whether an assistant turn only asks a question back: it ends with one, and names and suggests nothing."""
    said = sentences(message.get("content") or "")
    return bool(said) and said[-1].endswith("?") and not suggests(message) and not any(
        t[:1].isupper() or any(c.isdigit() for c in t) for s in said for t in s.split()[1:] if t.strip("?!.,") != "I")


def answered_request(messages: Messages, turn: int) -> bool:
    """Whether the user turn `turn` asks for something and the assistant answers it (`reply_to`)."""
    return messages[turn]["role"] == "user" and asks(messages[turn]) and reply_to(messages, turn) is not None


def told_turns(messages: Messages) -> list[int]:
    """Indices of the turns that carry information: every user turn, every tool result, each assistant
    turn that answers a user turn asking for something (`reply_to`), and each that suggests a named thing
    unasked (`suggests`). A turn that calls a tool is never one: what it said beside the call is a
    preamble ("Let me check.")."""
    out = set()
    for i, m in enumerate(messages):
        if m["role"] in ("user", "tool") or suggests(m):
            out.add(i)
        if answered_request(messages, i):
            out.add(answer_to(messages, i))
    return sorted(out)


def told(messages: Messages) -> list[Told]:
    """The information's sentences, in order."""
    return [Told(messages[i]["role"], s, i) for i in told_turns(messages) for s in sentences(messages[i]["content"])]


def told_text(episode: dict) -> str:
    """What an episode tells (`told`), as one text: what a dream's answer must restate to count."""
    messages = episode_messages(episode)
    said = [messages[i]["content"] for i in told_turns(messages)]
    return "\n".join(said) if said else episode_text(episode)


def told_replies(episode: dict) -> str:
    """What the assistant's told turns say (`told`), as one text: the suggestions it made."""
    return " ".join(t.text for t in told(episode_messages(episode)) if t.role == "assistant")


def statements(episode: dict) -> list[str]:
    """The told sentences, in order."""
    return [t.text for t in told(episode_messages(episode))]


def message_tokens(tokenizer, message: dict) -> int:
    """A message's tokens as the teacher reads it (`turn_text`: a call's note and a result's lead count)."""
    return len(tokenizer.encode(turn_text(message), add_special_tokens=False)) + 4


def window_budget(config) -> int:
    """Tokens of episode a window may hold: room is left for a question and its answer."""
    return config.max_seq_len - config.dream_max_new_tokens - 48


def windows(tokenizer, episode: dict, config) -> list[Messages]:
    """The episode in windows of whole messages that each fit `window_budget`, consecutive windows sharing
    their last/first exchange (two messages), so a fact and the turn that answers it meet in one window.
    A chat that fits is one window, itself. A message longer than the budget alone is cut from its start."""
    messages = episode_messages(episode)
    budget = window_budget(config)
    sizes = [message_tokens(tokenizer, m) for m in messages]
    if sum(sizes) <= budget:
        return [messages]
    out: list[Messages] = []
    start = 0
    while start < len(messages):
        end, used = start, 0
        while end < len(messages) and used + sizes[end] <= budget:
            used += sizes[end]
            end += 1
        if end == start:  # one message over the budget: its last tokens, beside its call notes or result lead
            room = max(budget - message_tokens(tokenizer, {**messages[start], "content": ""}), 8)
            ids = tokenizer.encode(messages[start]["content"], add_special_tokens=False)[-room:]
            out.append([{**messages[start], "content": tokenizer.decode(ids)}])
            start += 1
            continue
        out.append(messages[start:end])
        if end >= len(messages):
            break
        start = max(end - 2, start + 1)
    return out


# a fact of the user's told before a request in one sentence: "my daughter's birthday is on the 3rd of May,
# any gift ideas?", "I'm flying to Orvik next week - what should I pack?" (`told` is the fact)
TOLD_THEN_ASKED = re.compile(
    r"(?P<told>(?:my|our|I|I'm|I've|I'll|we|we're|we've)\s[^?]+?)(?:,|\s+[-\u2013\u2014]+)\s+"
    r"(?:any|what|which|how|where|when|who|can|could|would|should|do|got|ideas?)\b[^,]*\?", re.IGNORECASE)
GOES_ON = re.compile(r"(?:he|she|it|they|his|her|its|their|he's|she's|it's|they're)\b", re.IGNORECASE)
# a sentence that tells what changed or no longer holds, whose next one, the user's own, says what holds now:
# "I don't work at Lirobr anymore. I'm with Hepcav now.", "We moved. We're in Wynmox now."
_CHANGED = re.compile(r"\b(?:moved|changed|switched|left|quit|no longer|anymore|any more|not|n't)\b", re.IGNORECASE)
_NOW_MINE = re.compile(r"(?:i|i'm|i've|we|we're|we've)\b", re.IGNORECASE)


_FROM_SAID = re.compile(r"\b(?:from|grew up|born)\b", re.IGNORECASE)


def quote(messages: Messages, question: str, tokenizer, max_tokens: int, *, prompt_words: Collection[str] = (),
          avoid: Collection[str] = (), replies_only: bool = False) -> str:
    """The told sentences about what a question names (all of them when it names none), cut to
    `max_tokens`: a restatement the in-context teacher scores token by token without having to write it
    (a 135M teacher often replies "Noted!" instead of restating), with the sentence after one that a pronoun
    starts ("His name is Clover." after "I adopted a rabbit!"). A matching sentence that asks the
    assistant for something brings the assistant's reply along (the suggestion is the answer). Clauses
    naming a word of `avoid` (a value the chat corrects) are left out. `replies_only` (the question asks
    what the assistant said): only the assistant's replies to the matching requests. What a tool returned
    comes first: it states what the agent found out, where the user's turn before it mostly asks for it
    ("Can you check which hotel Mara Tellen is staying at?") and would take the budget. A quote never
    writes a tool call (`without_calls`): calls are not told, and a reply holding call markup loses it."""
    asked = words(question) - set(prompt_words)
    asked |= cues(asked)  # "Where do I live?" of "We moved. We're in Wynmox now."
    said = told(messages)
    chosen = {i for i, t in enumerate(said) if words(t.text) & asked}
    if not asked and question.endswith(" from?"):  # "Where am I from?" names no content word: "I'm from X"
        chosen = {i for i, t in enumerate(said) if t.role == "user" and _FROM_SAID.search(t.text)}
    # the next sentence of the turn, when a pronoun starts it, tells more of the same thing: "I finally
    # adopted a rabbit! His name is Clover." answers "What is my rabbit called?"; after a change, the
    # user's own next sentence tells what holds now ("We moved. We're in Wynmox now.")
    chosen |= {i + 1 for i in chosen if i + 1 < len(said) and said[i + 1].turn == said[i].turn
               and said[i].role == "user" and (GOES_ON.match(said[i + 1].text) or (
                   _CHANGED.search(said[i].text) and _NOW_MINE.match(said[i + 1].text)))}
    about = sorted([said[i] for i in sorted(chosen)] or said, key=lambda t: t.role != "tool")
    parts: list[str] = []
    for t in about:
        replied = t.role == "user" and answered_request(messages, t.turn)
        told_first = TOLD_THEN_ASKED.search(t.text) if replied and not replies_only else None
        if told_first and words(told_first["told"]) & asked:  # the fact before the request is what is asked
            parts.append(t.text[:told_first.end("told")] + ".")
            continue
        if not (replies_only and replied):
            parts.append(t.text)
        if replied:
            parts.append(messages[answer_to(messages, t.turn)]["content"])
    text = " ".join(dict.fromkeys(kept for kept in map(without_calls, parts) if kept))
    if avoid:
        text = without_clauses(text, avoid)
    ids = tokenizer.encode(text, add_special_tokens=False)
    return tokenizer.decode(ids[:max_tokens]).strip()


def without_clauses(text: str, avoid: Collection[str]) -> str:
    """The text less its clauses (split at , ; and sentence ends) that name a word of `avoid`; a change told
    as "from <old> to <new>" keeps its clause without the "from" part ("X moved from Ettgor to Shiten" ->
    "X moved to Shiten"): the whole clause is the only one that says the new value."""
    avoid = set(avoid)

    def cut(clause: str) -> str:
        return FROM_BEFORE_TO.sub(lambda m: "" if words(m.group()) & avoid else m.group(), clause)

    out = []
    for sentence in sentences(text):
        kept = [c for c in (cut(c).strip() for c in re.split(r"[,;]\s*", sentence)) if c and not words(c) & avoid]
        if kept:  # each sentence keeps its own end: "Work was exhausting today. She works at Pamir now."
            joined = ", ".join(kept)
            out.append(joined if joined[-1] in ".!?" or sentence[-1] not in ".!?" else joined + sentence[-1])
    return " ".join(out)


def episode_windows(tokenizer, episodes: Sequence[dict], config) -> dict[str, list[Messages]]:
    """Every episode's windows, by episode id."""
    return {str(e.get("id", "")): windows(tokenizer, e, config) for e in episodes}
