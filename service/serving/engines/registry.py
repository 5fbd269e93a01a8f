"""The adapter bookkeeping both engines share: which adapters are loaded, which namespace each one
serves, and how many admitted requests are pinned to each.

A request reads its namespace's adapter and is counted in one step (`pin`), so an activation that
returned before it is seen, and an unload can wait until the requests pinned to the adapter are done.
Thread-safe: the local engine's worker thread writes it while the event loop reads it.
"""

from __future__ import annotations

import threading
from collections import Counter

from service.errors import AdapterError
from service.serving.engines.base import AdapterInfo


class AdapterRegistry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: dict[str, str] = {}  # adapter name -> folder, once loaded
        self._serving: dict[str, str] = {}  # namespace -> adapter name (absent: the base model)
        self._pinned: Counter[str | None] = Counter()  # adapter name (None: the base model) -> requests

    # --- loaded adapters -----------------------------------------------------------------------------

    def __contains__(self, name: str) -> bool:
        with self._lock:
            return name in self._paths

    def __len__(self) -> int:
        with self._lock:
            return len(self._paths)

    def names(self) -> list[str]:
        with self._lock:
            return list(self._paths)

    def path(self, name: str) -> str | None:
        with self._lock:
            return self._paths.get(name)

    def paths(self) -> dict[str, str]:
        """Adapter name -> folder, a snapshot."""
        with self._lock:
            return dict(self._paths)

    def add(self, name: str, path: str) -> None:
        """Record an adapter once its load succeeded."""
        with self._lock:
            self._paths[name] = path

    def remove(self, name: str) -> str:
        """Forget a loaded adapter (from here on it cannot be activated); returns its folder."""
        with self._lock:
            return self._paths.pop(name)

    def require_loaded(self, name: str) -> None:
        if name not in self:
            raise AdapterError(f"adapter {name!r} is not loaded", param="name")

    def require_new(self, name: str) -> None:
        if name in self:
            raise AdapterError(f"adapter {name!r} is already loaded; published adapters get a new name")

    # --- namespaces ----------------------------------------------------------------------------------

    def serving(self, namespace: str) -> str | None:
        """The adapter serving `namespace` now (None: the base model)."""
        with self._lock:
            return self._serving.get(namespace)

    def activate(self, namespace: str, name: str | None) -> None:
        """Serve `namespace` with loaded adapter `name` (None: the base model) from the next request on."""
        with self._lock:
            if name is None:
                self._serving.pop(namespace, None)
                return
            if name not in self._paths:
                raise AdapterError(f"adapter {name!r} is not loaded", param="name")
            self._serving[namespace] = name

    def require_unused(self, name: str) -> None:
        """`AdapterError` unless `name` is loaded and serves no namespace (so it may be unloaded)."""
        with self._lock:
            if name not in self._paths:
                raise AdapterError(f"adapter {name!r} is not loaded", param="name")
            users = sorted(ns for ns, adapter in self._serving.items() if adapter == name)
        if users:
            raise AdapterError(f"adapter {name!r} still serves namespace(s) {', '.join(users)}")

    def infos(self) -> list[AdapterInfo]:
        with self._lock:
            return [
                AdapterInfo(name, path, sorted(ns for ns, a in self._serving.items() if a == name))
                for name, path in self._paths.items()
            ]

    # --- requests ------------------------------------------------------------------------------------

    def pin(self, namespace: str) -> str | None:
        """Admit one request of `namespace`: its adapter (None: the base model), counted until `unpin`."""
        with self._lock:
            name = self._serving.get(namespace)
            self._pinned[name] += 1
            return name

    def unpin(self, name: str | None) -> None:
        with self._lock:
            self._pinned[name] -= 1
            if not self._pinned[name]:
                del self._pinned[name]

    def requests_on(self, name: str | None) -> int:
        with self._lock:
            return self._pinned.get(name, 0)

    def requests(self) -> int:
        """Every admitted request not yet finished, on an adapter or on the base model."""
        with self._lock:
            return sum(self._pinned.values())
