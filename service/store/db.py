"""Database engine and sessions; migrations run only through Alembic."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

REPO_ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS_DIR = REPO_ROOT / "migrations"


def private_dir(path: Path, *, tighten: bool = False) -> None:
    """Create `path` (and its parents) for this user only (0700): transcripts are private. With
    `tighten`, an existing folder this user owns is made 0700 too (never a shared sticky one like /tmp)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if tighten:
        mode = path.stat()
        if mode.st_uid == os.getuid() and mode.st_mode & 0o077 and not mode.st_mode & 0o1000:
            path.chmod(0o700)


def _sqlite_path(url: str) -> Path | None:
    path = normalise_url(url).split("///", 1)[-1] if url.startswith("sqlite") else ""
    return Path(path) if path and path != ":memory:" and not path.startswith("file:") else None


def normalise_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here, not psycopg2."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        path = _sqlite_path(url)
        if path is not None:
            private_dir(path.parent)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            if path is not None and path.exists():
                path.chmod(0o600)  # SQLite gives its -wal and -shm files the database file's mode
            # WAL lets readers (dashboard) run beside the writer; foreign keys are off by default in SQLite.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    # A short connect timeout: a down database must fail fast so the episode goes to the spool.
    return create_engine(
        url, pool_pre_ping=True, pool_size=10, max_overflow=10, pool_timeout=5, connect_args={"connect_timeout": 3}
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def make_reading_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions for one-statement reads on a request's path (the API-key lookup): in autocommit, a read is
    its statement alone, without the BEGIN and ROLLBACK round trips of a transaction. Same pool as
    `make_sessionmaker`'s; never for writes."""
    return sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as session, session.begin():
        yield session


def alembic_config(url: str):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """`reverie db upgrade`: bring the schema to `revision`."""
    from alembic import command

    path = _sqlite_path(url)
    if path is not None:
        private_dir(path.parent)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    command.upgrade(alembic_config(url), revision)
