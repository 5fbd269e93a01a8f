"""Poisoning guard: user turns that try to plant instructions or rules in long-term memory.

A conversation may ask the assistant to do anything in the moment; what it must not do is rewrite
how the model behaves for everyone after a night's sleep. Episodes whose user turns look like an
attempt to install a standing rule are flagged when recorded and left out of consolidation by default.
The patterns are deliberately about *standing instructions* ("from now on", "always", "ignore previous
instructions", fake system turns), not about facts, so that telling the model facts stays learnable.
"""

from __future__ import annotations

import re

PLANTED_INSTRUCTION = "planted_instruction"

_PATTERNS = [
    # standing orders about future behaviour
    r"\bfrom now on\b",
    r"\bfrom this (?:point|moment) (?:on|forward)\b",
    r"\bhenceforth\b",
    r"\bgoing forward,? (?:you|always|never)\b",
    r"\bin (?:all|every) (?:future|later) (?:answers?|repl(?:y|ies)|responses?|conversations?)\b",
    r"\b(?:always|never) (?:say|answer|reply|respond|tell|recommend|mention|refuse|include|start|end)\b",
    r"\bremember (?:this|that)? ?(?:rule|instruction)s?\b",
    r"\b(?:new|permanent|standing) (?:rule|instruction|directive|policy)\b",
    r"\byour (?:new|real|true) (?:instructions?|rules?|purpose|system prompt)\b",
    # overriding the instructions it was given
    r"\bignore (?:all |any |your )?(?:the )?(?:previous|prior|above|earlier|original) (?:instructions?|rules?|prompts?|directions?)\b",
    r"\bdisregard (?:all |any |your )?(?:the )?(?:previous|prior|above|earlier|original) (?:instructions?|rules?|prompts?)\b",
    r"\bforget (?:all |everything |your )?(?:previous |prior )?(?:instructions?|rules?|you were told)\b",
    r"\boverride (?:your|the) (?:instructions?|rules?|system prompt|guidelines)\b",
    # hidden system prompts smuggled into a user turn
    r"<\|im_start\|>\s*system",
    r"<\|system\|>",
    r"\[\s*system\s*\]",
    r"(?:^|\n)\s*(?:###\s*)?system(?: prompt)?\s*:",
    r"<\s*system\s*>",
]
_PLANTED = re.compile("|".join(f"(?:{p})" for p in _PATTERNS), re.IGNORECASE)


def flags_for(messages: list[dict]) -> list[str]:
    """Flags of an episode from its user turns (what the assistant or a real system prompt says is trusted)."""
    for message in messages:
        if message.get("role") == "user" and _PLANTED.search(message.get("content") or ""):
            return [PLANTED_INSTRUCTION]
    return []
