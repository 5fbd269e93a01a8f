"""An agent's tool calls and their results, as the sleep reads them and shows them to the teacher.

A tool's result is told text: what an agent looked up is information it learned, as much as what the
user said. A call is not: no training target ever holds one, so a night never teaches the model to write
a call it did not make. In the trainer's chat (`trainer.episodes.episode_messages`) a result is a turn of
role "tool" whose content is readable text (a JSON result as "key: value." sentences) and whose "name" is
the function that gave it; a call is only a note kept beside the assistant's text ("calls"), never in it.

The teacher sees them in plain user and assistant turns (`presented`): the call as a note at the end of
the assistant's turn, `(called lookup_ferry with {"route": "Osk"})`, and the result as a user turn,
`(lookup_ferry returned: The Velmar ferry ...)`, results of consecutive calls in one turn. Every chat
template takes user and assistant turns that alternate, while a "tool" role is refused by some (Gemma's,
Mistral's without their call ids) and dropped by others, and SmolLM2's ChatML only writes its name as
a header its own template never produces; Qwen2.5's own template also puts a result in a user turn.
Plain-language notes, not a model's call markup (`<tool_call>`), keep the teacher from being prompted to
write a call when it answers a question.
"""

from __future__ import annotations

import json
import re

from trainer.text import sentences

# a dream sentence that writes a call: the notes `presented` writes, or a template's call markup
_CALL_TEXT = re.compile(r"\(called (?:a tool|[\w.\-]+)(?: with\b|\))|\((?:a tool|[\w.\-]+) returned:|"
                        r"</?tool_call>|</?tool_response>|"
                        r"</?function_call>|\[TOOL_CALLS\]|<\|python_tag\|>", re.IGNORECASE)


def call_notes(tool_calls: list) -> str:
    """An assistant's calls as notes, one a line: `(called lookup_ferry with {"route": "Osk"})`, or
    `(called lookup_ferry)` for a call without arguments. Arguments kept as an object are written as
    compact JSON, text as it came."""
    notes = []
    for call in tool_calls or []:
        function = (call.get("function") or {}) if isinstance(call, dict) else {}
        arguments = function.get("arguments")
        shown = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        name = function.get("name") or "a tool"
        empty = arguments in (None, "", {}, "{}")
        notes.append(f"(called {name})" if empty else f"(called {name} with {shown})")
    return "\n".join(notes)


def readable_result(text: str) -> str:
    """A tool's result as text to read: a JSON object or array as "key: value." sentences, one a line
    (nested keys joined: "ferry name: Velmar."; a list of values joined with commas), anything else as
    it came."""
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return text
    try:
        value = json.loads(stripped)
    except ValueError:
        return text
    return "\n".join(_sentences_of(value, ""))


def _sentences_of(value, path: str) -> list[str]:
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in _sentences_of(item, f"{path} {key}".strip())]
    if isinstance(value, list):
        if all(not isinstance(item, (dict, list)) for item in value):
            return _sentences_of(", ".join(_scalar(item) for item in value), path) if value else []
        return [s for item in value for s in _sentences_of(item, path)]
    said = _scalar(value)
    key = path.replace("_", " ")
    line = f"{key}: {said}" if key else said
    return [line if line.endswith((".", "!", "?")) else line + "."]


def _scalar(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def turn_text(message: dict) -> str:
    """One message of the trainer's chat as the teacher reads it (`presented`)."""
    if message["role"] == "tool":
        return f"({message.get('name') or 'a tool'} returned: {message['content']})"
    return "\n".join(filter(None, [message["content"], message.get("calls")]))


def presented(messages: list[dict]) -> list[dict]:
    """The trainer's chat as user/assistant (and system) turns that any chat template renders: calls
    as notes in the assistant's turn, tool results as user turns (`turn_text`), the results of
    consecutive calls in one. A chat without tools comes back as it was (role and content)."""
    out: list[dict] = []
    for i, message in enumerate(messages):
        text = turn_text(message)
        if message["role"] == "tool" and i > 0 and messages[i - 1]["role"] == "tool":
            out[-1]["content"] += "\n" + text
        else:
            out.append({"role": "user" if message["role"] == "tool" else message["role"], "content": text})
    return out


def names_a_call(text: str) -> bool:
    """Whether a text writes a tool call or its result: a note of `presented` or a template's markup."""
    return bool(_CALL_TEXT.search(text))


def without_calls(text: str) -> str:
    """The text less its sentences that write a call (`names_a_call`); a text naming none as it is."""
    if not names_a_call(text):
        return text
    return " ".join(s for s in sentences(text) if not names_a_call(s))
