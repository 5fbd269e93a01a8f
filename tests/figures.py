"""Figures that tests measure, collected under test-output/figures.json for docs/reliability.md."""

from __future__ import annotations

import json
import threading

from tests.servers import REPO

_FILE = REPO / "test-output" / "figures.json"
_lock = threading.Lock()


def record_figure(name: str, **values) -> None:
    with _lock:
        _FILE.parent.mkdir(exist_ok=True)
        figures = json.loads(_FILE.read_text()) if _FILE.exists() else {}
        figures[name] = values
        _FILE.write_text(json.dumps(figures, indent=2, sort_keys=True, default=str) + "\n")
