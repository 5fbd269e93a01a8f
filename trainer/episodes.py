"""What an episode tells: its turns, the sentences that carry information, and the windows it is read in.

An episode is a chat (`messages`). Its information is what the user said, and what the assistant said
when the user asked for something (a name it suggested, a plan it made): an assistant turn that only
acknowledges a statement ("Thanks, I'll remember that.") is the model's own filler and tells nothing.
A chat longer than the training length is read in overlapping windows of whole messages, so every turn
is some window's context; a short chat is one window, the whole of it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from trainer.chat import Messages
from trainer.text import sentences, words

# A user turn asks for something when one of its sentences is a question or starts with a request verb;
# the assistant's reply to it is then information (a suggestion, a decision, an answer).
_REQUEST = re.compile(r"\?$|^(?:please\s+|could you\s+|can you\s+|would you\s+)?(?:give|suggest|pick|choose|name|"
                      r"recommend|tell|help|make|plan|write|come up|think of|decide|find|propose|list|book|"
                      r"draft|create|invent)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Told:
    """One sentence of information: who said it, and its turn's place in the chat."""

    role: str  # "user" or "assistant"
    text: str
    turn: int


def episode_messages(episode: dict) -> Messages:
    """The episode's chat, without any system message (the serving prompt is added at render time). An
    agent's turn that only called a tool has no content (null): it is empty text here, never "None"."""
    return [{"role": m["role"], "content": _text(m.get("content"))} for m in episode["messages"] if m["role"] != "system"]


def _text(content) -> str:
    """A message's content as text: a string, the text of its parts, or "" for none."""
    if content is None:
        return ""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def episode_text(episode: dict) -> str:
    return "\n".join(m["content"] for m in episode_messages(episode))


# "Did you know Kavos became a beekeeper?" tells; it asks nothing
_TELLING_QUESTION = re.compile(r"^(?:did you know|guess what|have you heard|you know what|remember)\b", re.IGNORECASE)


def asks(message: dict) -> bool:
    """Whether a user turn asks the assistant for something."""
    return message["role"] == "user" and any(_REQUEST.search(s) and not _TELLING_QUESTION.search(s)
                                             for s in sentences(message["content"]))


def answered_request(messages: Messages, turn: int) -> bool:
    """Whether the user turn `turn` asks for something and the next turn is the assistant's reply to it."""
    return messages[turn]["role"] == "user" and asks(messages[turn]) and turn + 1 < len(messages) \
        and messages[turn + 1]["role"] == "assistant"


def told_turns(messages: Messages) -> list[int]:
    """Indices of the turns that carry information: every user turn, and each assistant turn that replies
    to a user turn asking for something."""
    out = []
    for i, m in enumerate(messages):
        if m["role"] == "user" or (m["role"] == "assistant" and i > 0 and asks(messages[i - 1])):
            out.append(i)
    return out


def told(messages: Messages) -> list[Told]:
    """The information's sentences, in order."""
    return [Told(messages[i]["role"], s, i) for i in told_turns(messages) for s in sentences(messages[i]["content"])]


def told_text(episode: dict) -> str:
    """What an episode tells (`told`), as one text: what a dream's answer must restate to count."""
    messages = episode_messages(episode)
    said = [messages[i]["content"] for i in told_turns(messages)]
    return "\n".join(said) if said else episode_text(episode)


def statements(episode: dict) -> list[str]:
    """The told sentences, in order."""
    return [t.text for t in told(episode_messages(episode))]


def message_tokens(tokenizer, message: dict) -> int:
    return len(tokenizer.encode(message["content"], add_special_tokens=False)) + 4


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
        if end == start:  # one message over the budget: its last tokens
            ids = tokenizer.encode(messages[start]["content"], add_special_tokens=False)[-max(budget - 4, 8):]
            out.append([{"role": messages[start]["role"], "content": tokenizer.decode(ids)}])
            start += 1
            continue
        out.append(messages[start:end])
        if end >= len(messages):
            break
        start = max(end - 2, start + 1)
    return out


def quote(messages: Messages, question: str, tokenizer, max_tokens: int, *, prompt_words: Collection[str] = (),
          avoid: Collection[str] = (), replies_only: bool = False) -> str:
    """The told sentences about what a question names (all of them when it names none), cut to
    `max_tokens`: a restatement the in-context teacher scores token by token without having to write it
    (a 135M teacher often replies "Noted!" instead of restating). A matching sentence that asks the
    assistant for something brings the assistant's reply along (the suggestion is the answer). Clauses
    naming a word of `avoid` (a value the chat corrects) are left out. `replies_only` (the question asks
    what the assistant said): only the assistant's replies to the matching requests."""
    asked = words(question) - set(prompt_words)
    said = told(messages)
    about = [t for t in said if words(t.text) & asked] or said
    parts: list[str] = []
    for t in about:
        replied = t.role == "user" and answered_request(messages, t.turn)
        if not (replies_only and replied):
            parts.append(t.text)
        if replied:
            parts.append(messages[t.turn + 1]["content"])
    text = " ".join(dict.fromkeys(parts))
    if avoid:
        text = without_clauses(text, avoid)
    ids = tokenizer.encode(text, add_special_tokens=False)
    return tokenizer.decode(ids[:max_tokens]).strip()


def without_clauses(text: str, avoid: Collection[str]) -> str:
    """The text less its clauses (split at , ; and sentence ends) that name a word of `avoid`."""
    avoid = set(avoid)
    kept = [c.strip() for s in sentences(text) for c in re.split(r"[,;]\s*", s) if c.strip() and not words(c) & avoid]
    return ", ".join(kept)


def episode_windows(tokenizer, episodes: Sequence[dict], config) -> dict[str, list[Messages]]:
    """Every episode's windows, by episode id."""
    return {str(e.get("id", "")): windows(tokenizer, e, config) for e in episodes}
