"""Real databases for tests: a fresh Postgres database per use, or a SQLite file."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager

import psycopg

PG_ADMIN_URL = os.environ.get("REVERIE_TEST_PG", "postgresql://root@127.0.0.1:5432/postgres")


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@contextmanager
def fresh_postgres_database():
    """Create an empty database, yield its URL, drop it afterwards."""
    name = f"reverie_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(PG_ADMIN_URL, name)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
