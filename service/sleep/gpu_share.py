"""One GPU for serving and training: put vLLM to sleep (weights offloaded, KV cache freed) while the
worker trains, and wake it afterwards, whatever happened in between.

vLLM must run with `--enable-sleep-mode` (and, for these endpoints, `VLLM_SERVER_DEV_MODE=1`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

log = logging.getLogger(__name__)


class VLLMSleeper:
    def __init__(self, base_url: str, *, api_key: str | None = None, level: int = 1, timeout_s: float = 300):
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.level = level
        self.timeout_s = timeout_s

    def _post(self, path: str, **params) -> None:
        response = httpx.post(f"{self.base_url}{path}", params=params, headers=self.headers, timeout=self.timeout_s)
        response.raise_for_status()

    @contextmanager
    def asleep(self) -> Iterator[None]:
        """Serving pauses for the duration of the block (requests wait in vLLM or get 503)."""
        self._post("/sleep", level=self.level)
        log.info("vLLM is asleep for training (level %d)", self.level)
        try:
            yield
        finally:
            self._post("/wake_up")
            log.info("vLLM is awake")
