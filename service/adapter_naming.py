"""How a published adapter is named in an engine: `mem-<namespace>-v<version>`.

A version is loaded once under its own name and never reloaded in place, so a name says which
version of which namespace's memory answered a request. The serving side, the sleep side and the
admin API all name adapters through this module.

A night that generates through vLLM loads adapters of its own there (the teacher it starts from, the
student it trains): `night-<run>-<role>`. They are the worker's, for as long as the night runs; the
engines never adopt, restore or route them.
"""

from __future__ import annotations

import re

_NAME = re.compile(r"^mem-(?P<namespace>.+)-v(?P<version>\d+)$")
_NIGHT = "night-"


def adapter_name(namespace: str, version: int) -> str:
    return f"mem-{namespace}-v{version}"


def parse_adapter_name(name: str) -> tuple[str, int] | None:
    """(namespace, version) of a name made by `adapter_name`; None for any other name."""
    match = _NAME.match(name)
    return (match["namespace"], int(match["version"])) if match else None


def night_adapter_name(run: str, role: str) -> str:
    """A night's private adapter in vLLM: `role` (`teacher`, `student-3`, ...) of run `run`."""
    return f"{_NIGHT}{run}-{role}"


def is_night_adapter(name: str) -> bool:
    return name.startswith(_NIGHT)
