"""Token buckets in the store, so that every replica counts an API key's requests against one limit.

The bucket is the one the per-process limiter kept (`REVERIE_RATE_LIMIT_PER_MINUTE` tokens, refilled
at that many per minute, one taken per request), moved into a row per key and taken from by a single
atomic upsert: Postgres locks the row for the statement, so two replicas taking at once see each
other's take; SQLite serialises writers. A token bucket rather than a fixed window: the limit means
what it meant before (no double burst at a window's edge) and needs one row per key, not one per window.

Clocks: `now` is each replica's Unix time (replicas keep NTP time, as the sleep leases already
assume); a replica whose clock runs behind the bucket's last refill adds nothing rather than removing.
"""

from __future__ import annotations

from sqlalchemy import case, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.store.models import RateBucket

_BUCKETS = RateBucket.__table__


def _level(per_minute: int, now: float):
    """The bucket's tokens at `now` (SQL over the stored row): refilled, at most full."""
    elapsed = case((_BUCKETS.c.refilled_at < now, now - _BUCKETS.c.refilled_at), else_=0.0)
    refilled = _BUCKETS.c.tokens + elapsed * (per_minute / 60.0)
    return case((refilled > float(per_minute), float(per_minute)), else_=refilled)


def take_token(*, session: Session, caller: str, per_minute: int, now: float) -> float:
    """Take one token of `caller`'s bucket: 0.0 when taken, else the seconds until one is there (nothing
    is taken then, so a refused request costs the caller nothing). Commits."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    level = _level(per_minute, now)
    upsert = (
        dialect.insert(_BUCKETS)
        .values(caller=caller, tokens=per_minute - 1.0, refilled_at=now)
        .on_conflict_do_update(
            index_elements=[_BUCKETS.c.caller],
            set_={"tokens": level - 1.0,
                  "refilled_at": case((_BUCKETS.c.refilled_at < now, now), else_=_BUCKETS.c.refilled_at)},
            where=level >= 1.0,
        )
        .returning(_BUCKETS.c.tokens)
    )
    taken = session.execute(upsert).first() is not None
    left = 1.0 if taken else session.execute(select(level).where(_BUCKETS.c.caller == caller)).scalar_one()
    session.commit()
    return 0.0 if taken else (1.0 - left) * 60.0 / per_minute


def forget_full_buckets(*, session: Session, idle_since: float) -> int:
    """Delete buckets untouched since `idle_since` (a minute or more ago: full again, the same as no row),
    so revoked and forgotten keys leave no rows behind. Commits."""
    removed = session.execute(delete(RateBucket).where(RateBucket.refilled_at < idle_since)).rowcount
    session.commit()
    return removed
