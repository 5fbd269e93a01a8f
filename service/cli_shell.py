"""How `reverie` talks to its user: a parser whose usage errors take one line and whose common options
are accepted after the subcommand too, and, when something goes wrong, one line naming what is wrong and
what to do, with a non-zero exit; never a traceback (`reverie --traceback ...` shows one, for a bug report)."""

from __future__ import annotations

import argparse
import sys


DATA_DIR_HELP = "data folder (models, spool, adapters, the default SQLite store); overrides REVERIE_DATA_DIR"
TRACEBACK_HELP = "show the traceback of an unexpected error (for a bug report)"


class CliError(Exception):
    """A sentence for the user: what is wrong and what to do. Exits 1."""


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors take one line (with where to read the help) instead of two."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """--data-dir and --traceback after the subcommand too (`reverie serve --data-dir X`); SUPPRESS keeps
    an absent one from hiding the value given before the subcommand."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                if not sub.add_help:  # eval: the benchmark parses its own arguments
                    continue
                if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                    add_common_options(sub)
                    continue
                sub.add_argument("--data-dir", default=argparse.SUPPRESS, help=DATA_DIR_HELP)
                sub.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS, help=TRACEBACK_HELP)


def command_at(argv: list[str]) -> int | None:
    """Where the subcommand is: the first word that is neither a top-level option nor --data-dir's value."""
    at = 0
    while at < len(argv):
        if argv[at] == "--data-dir":
            at += 2
        elif argv[at].startswith("-"):
            at += 1
        else:
            return at
    return None


def require_existing_sqlite(url: str) -> None:
    """A command that reads the store must not create one: a SQLite path that is not there is a typo
    or a store never migrated, and opening it would leave an empty file (and its folder) behind."""
    from pathlib import Path

    from service.store.db import normalise_url

    if not normalise_url(url).startswith("sqlite"):
        return
    path = url.split("///", 1)[-1].split("?", 1)[0]
    if path and path != ":memory:" and not Path(path).is_file():
        raise CliError(
            f"no database at {path}: check --database-url / REVERIE_DATABASE_URL / --data-dir, "
            f"or create it with `reverie db upgrade`"
        )


def _safe(url: str | None) -> str:
    if not url:
        return "the database"
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "the database"


def explain(exc: BaseException, database_url: str | None = None) -> str:
    """One line for `exc`: what went wrong and what to do about it."""
    from pydantic import ValidationError
    from sqlalchemy import exc as sa

    from service.modelprep import ModelPrepareError

    if isinstance(exc, (CliError, ModelPrepareError)):
        return str(exc)
    if isinstance(exc, (sa.ArgumentError, sa.NoSuchModuleError)):
        return (f"bad database URL ({str(exc).splitlines()[0]}): give sqlite:///PATH or "
                "postgresql://USER:PASSWORD@HOST/DB in --database-url or REVERIE_DATABASE_URL")
    if isinstance(exc, sa.DBAPIError):
        first = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        lowered = first.lower()
        if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
            return f"{_safe(database_url)} has no Reverie tables ({first}): run `reverie db upgrade` first"
        return (f"cannot use {_safe(database_url)}: {first}; check that the database is running and "
                "that --database-url / REVERIE_DATABASE_URL names it")
    if isinstance(exc, FileNotFoundError):
        return f"no such file: {exc.filename or exc}; check the path"
    if isinstance(exc, (PermissionError, IsADirectoryError, NotADirectoryError)):
        return f"cannot use {exc.filename or 'a path'}: {exc.strerror}; check the path and its permissions"
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error.get("loc", ())) or "a setting"
        return f"bad setting REVERIE_{where.upper()}: {error.get('msg')}; fix it in the environment or .env"
    return (f"unexpected {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''} "
            "(a bug: run again with `reverie --traceback ...` and report what it prints)")


def fail(exc: BaseException, database_url: str | None = None) -> int:
    print(f"error: {explain(exc, database_url)}", file=sys.stderr)
    return 1
