"""Per-key admission: a token-bucket rate limit and a cap on requests in flight, each a clear 429."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from service.errors import InvalidRequestError, QueueFullError


@dataclass(frozen=True)
class RequestLimits:
    max_messages: int
    max_chars: int
    max_completion_tokens: int
    max_choices: int = 4

    def check(self, messages: list[dict], max_tokens: int | None, choices: int = 1) -> None:
        if len(messages) > self.max_messages:
            raise InvalidRequestError(
                f"Too many messages: {len(messages)} > {self.max_messages}.", param="messages", code="too_many_messages"
            )
        chars = sum(len(m.get("content") or "") for m in messages)
        if chars > self.max_chars:
            raise InvalidRequestError(
                f"The messages hold {chars} characters, more than the {self.max_chars} allowed.",
                param="messages",
                code="messages_too_long",
            )
        if max_tokens is not None and max_tokens > self.max_completion_tokens:
            raise InvalidRequestError(
                f"max_tokens is {max_tokens}; at most {self.max_completion_tokens} is allowed.", param="max_tokens"
            )
        if choices > self.max_choices:
            raise InvalidRequestError(f"n is {choices}; at most {self.max_choices} choices are allowed.", param="n")


def retry_after_headers(seconds: float) -> dict[str, str]:
    """`Retry-After` in whole seconds rounded up (never early), and OpenAI's `retry-after-ms`."""
    return {"Retry-After": str(max(1, math.ceil(seconds))), "retry-after-ms": str(max(1, math.ceil(seconds * 1000)))}


class RateLimitedError(QueueFullError):
    code = "rate_limit_exceeded"

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class KeyLimiter:
    """Token bucket (`per_minute`, 0: off) and in-flight cap (`max_inflight`, 0: off) for each caller."""

    def __init__(self, per_minute: int = 0, max_inflight: int = 0):
        self.per_minute = per_minute
        self.max_inflight = max_inflight
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)
        self._inflight: dict[str, int] = {}

    def _take_token(self, key: str) -> None:
        if not self.per_minute:
            return
        now = time.monotonic()
        rate = self.per_minute / 60.0
        tokens, last = self._buckets.get(key, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / rate
            raise RateLimitedError(
                f"Rate limit reached: {self.per_minute} requests per minute for this key. Retry in {wait:.1f} s.", wait
            )
        self._buckets[key] = (tokens - 1.0, now)

    def acquire(self, key: str) -> Callable[[], None]:
        """Admit one request of `key` or raise `RateLimitedError`; returns the (idempotent) release."""
        with self._lock:
            if self.max_inflight and self._inflight.get(key, 0) >= self.max_inflight:
                raise RateLimitedError(
                    f"This key already has {self.max_inflight} requests in flight; wait for one to finish.", 1.0
                )
            self._take_token(key)
            self._inflight[key] = self._inflight.get(key, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if released:
                    return
                released = True
                self._inflight[key] -= 1
                if not self._inflight[key]:
                    del self._inflight[key]

        return release


class AuthThrottledError(RateLimitedError):
    code = "too_many_failed_attempts"


class FailureThrottle:
    """Wrong keys per client address: `per_minute` failures (0: off), refilled over a minute; past that,
    every attempt from the address, right key or not, gets 429 until the bucket refills. Remembers at
    most `max_clients` addresses (the fullest buckets are forgotten first), so guessing from many
    addresses cannot grow it without bound."""

    def __init__(self, per_minute: int, max_clients: int = 10_000):
        self.per_minute = per_minute
        self.max_clients = max_clients
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (failures left, last refill)

    def _left(self, client: str, now: float) -> float:
        left, last = self._buckets.get(client, (float(self.per_minute), now))
        return min(float(self.per_minute), left + (now - last) * self.per_minute / 60.0)

    def check(self, client: str) -> None:
        """Raise `AuthThrottledError` while `client` has no failures left."""
        if not self.per_minute:
            return
        with self._lock:
            left = self._left(client, time.monotonic())
        if left < 1.0:
            wait = (1.0 - left) * 60.0 / self.per_minute
            raise AuthThrottledError(f"Too many failed sign-in attempts from this address; retry in {wait:.0f} s.", wait)

    def failed(self, client: str) -> None:
        if not self.per_minute:
            return
        now = time.monotonic()
        with self._lock:
            self._buckets[client] = (self._left(client, now) - 1.0, now)
            if len(self._buckets) > self.max_clients:
                for full in sorted(self._buckets, key=lambda c: self._left(c, now), reverse=True)[: self.max_clients // 10]:
                    del self._buckets[full]
