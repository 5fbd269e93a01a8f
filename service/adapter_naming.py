"""How a published adapter is named in an engine: `mem-<namespace>-v<version>`.

A version is loaded once under its own name and never reloaded in place, so a name says which
version of which namespace's memory answered a request. The serving side, the sleep side and the
admin API all name adapters through this module.
"""

from __future__ import annotations

import re

_NAME = re.compile(r"^mem-(?P<namespace>.+)-v(?P<version>\d+)$")


def adapter_name(namespace: str, version: int) -> str:
    return f"mem-{namespace}-v{version}"


def parse_adapter_name(name: str) -> tuple[str, int] | None:
    """(namespace, version) of a name made by `adapter_name`; None for any other name."""
    match = _NAME.match(name)
    return (match["namespace"], int(match["version"])) if match else None
