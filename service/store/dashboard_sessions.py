"""Dashboard sessions on the server: a signed cookie is honoured only while its session's row is here,
so signing out on one replica signs the cookie out on all of them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.store.models import DashboardSession, utcnow


def open_session(*, session: Session, session_digest: str, expires_at: datetime) -> None:
    """Record a signed-in session (and drop the expired ones). Commits."""
    now = utcnow()
    session.execute(delete(DashboardSession).where(DashboardSession.expires_at <= now))
    session.add(DashboardSession(id=session_digest, created_at=now, expires_at=expires_at))
    session.commit()


def session_is_open(*, session: Session, session_digest: str) -> bool:
    found = session.scalar(
        select(DashboardSession.id).where(DashboardSession.id == session_digest, DashboardSession.expires_at > utcnow())
    )
    return found is not None


def close_session(*, session: Session, session_digest: str) -> None:
    """Sign a session out, on every replica. Commits."""
    session.execute(delete(DashboardSession).where(DashboardSession.id == session_digest))
    session.commit()
