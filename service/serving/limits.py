"""Per-key admission: a token-bucket rate limit and a cap on requests in flight, each a clear 429.

The rate limit's buckets live in the store when there is one (`StoreBuckets`): every replica takes
from the same bucket, so a key gets REVERIE_RATE_LIMIT_PER_MINUTE across all of them. The in-flight
cap counts what this process is serving (a request in flight lives in one process).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.errors import InvalidRequestError, QueueFullError
from service.serving.recording import store_is_down
from service.store import rate_buckets

log = logging.getLogger(__name__)


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


class LocalBuckets:
    """Token buckets in this process: `per_minute` tokens each, refilled at `per_minute` a minute."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)

    def take(self, key: str) -> float:
        """0.0 when a token was taken, else the seconds until there is one (nothing taken)."""
        now = time.monotonic()
        rate = self.per_minute / 60.0
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return (1.0 - tokens) / rate
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0


class StoreBuckets:
    """The same buckets in the store (`store/rate_buckets.py`), shared by every replica. While the store
    does not answer, this process limits on its own (`LocalBuckets`) rather than refuse or wave through
    everyone, and leaves the store alone for `retry_after_s` after each failure. Every
    `FORGET_EVERY_S` it deletes buckets idle long enough to be full (no row is the same as a full one)."""

    FORGET_EVERY_S = 600.0

    def __init__(self, sessions: sessionmaker[Session], per_minute: int, retry_after_s: float = 2.0):
        self.sessions = sessions
        self.per_minute = per_minute
        self.retry_after_s = retry_after_s
        self.local = LocalBuckets(per_minute)
        self._down_until = 0.0
        self._next_forget = time.monotonic() + self.FORGET_EVERY_S

    def take(self, key: str) -> float:
        if time.monotonic() < self._down_until:
            return self.local.take(key)
        try:
            with self.sessions() as session:
                wait = rate_buckets.take_token(session=session, caller=key, per_minute=self.per_minute, now=time.time())
                if time.monotonic() >= self._next_forget:
                    self._next_forget = time.monotonic() + self.FORGET_EVERY_S
                    rate_buckets.forget_full_buckets(session=session, idle_since=time.time() - 120.0)
                return wait
        except SQLAlchemyError as exc:
            if not store_is_down(exc):
                raise
            self._down_until = time.monotonic() + self.retry_after_s
            log.warning("rate limit: the store does not answer (%s); limiting per process", str(exc).splitlines()[0])
            return self.local.take(key)


class KeyLimiter:
    """Rate limit (`per_minute`, 0: off; shared by the replicas when given `StoreBuckets`) and in-flight
    cap (`max_inflight`, 0: off) for each caller."""

    def __init__(self, per_minute: int = 0, max_inflight: int = 0, buckets: LocalBuckets | StoreBuckets | None = None):
        self.per_minute = per_minute
        self.max_inflight = max_inflight
        self.buckets = buckets if buckets is not None else LocalBuckets(per_minute)
        self._lock = threading.Lock()
        self._inflight: dict[str, int] = {}

    async def admit(self, key: str) -> Callable[[], None]:
        """`acquire`, taking from the store's bucket in a thread so the event loop never waits on it."""
        release = self._hold_slot(key)
        try:
            if self.per_minute and isinstance(self.buckets, StoreBuckets):
                wait = await asyncio.to_thread(self.buckets.take, key)
            else:
                wait = self.buckets.take(key) if self.per_minute else 0.0
        except BaseException:  # cancelled while the store answered, too: the slot is not leaked
            release()
            raise
        return self._admitted(wait, release)

    def acquire(self, key: str) -> Callable[[], None]:
        """Admit one request of `key` or raise `RateLimitedError`; returns the (idempotent) release."""
        release = self._hold_slot(key)
        try:
            wait = self.buckets.take(key) if self.per_minute else 0.0
        except BaseException:
            release()
            raise
        return self._admitted(wait, release)

    def _admitted(self, wait: float, release: Callable[[], None]) -> Callable[[], None]:
        if wait:
            release()
            raise RateLimitedError(
                f"Rate limit reached: {self.per_minute} requests per minute for this key. Retry in {wait:.1f} s.", wait
            )
        return release

    def _hold_slot(self, key: str) -> Callable[[], None]:
        """Count one more request of `key` in flight (429 past the cap) before its token is taken, so two
        requests at once cannot both pass the cap; returns the (idempotent) release."""
        with self._lock:
            if self.max_inflight and self._inflight.get(key, 0) >= self.max_inflight:
                raise RateLimitedError(
                    f"This key already has {self.max_inflight} requests in flight; wait for one to finish.", 1.0
                )
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
