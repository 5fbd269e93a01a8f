"""`reverie keys create --namespace NS [--label TEXT] | list [--namespace NS] | revoke PREFIX-OR-ID` (with
`--json`): the store's API keys from the shell. Every replica honours a new key, and refuses a revoked
one, from its next request; no restart."""

from __future__ import annotations

import argparse
import json
import sys

from service.config import check_namespace


def store_has_keys(database_url: str) -> bool:
    """Whether the store (if it exists and is migrated) holds a live key: `reverie serve` without
    REVERIE_API_KEYS may listen beyond loopback only then."""
    from sqlalchemy.exc import SQLAlchemyError

    from service.cli_shell import CliError, require_existing_sqlite
    from service.store import api_keys as key_store
    from service.store.db import make_engine, make_sessionmaker

    try:
        require_existing_sqlite(database_url)
    except CliError:
        return False
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return key_store.has_active_keys(session=session)
    except SQLAlchemyError:
        return False
    finally:
        engine.dispose()


def _namespace(text: str) -> str:
    try:
        return check_namespace(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _label(text: str) -> str:
    if len(text) > 200 or "\x00" in text:
        raise argparse.ArgumentTypeError("a label is at most 200 characters, without NUL")
    return text


def _line(key) -> str:
    state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M:%S}" if key.revoked_at else "active"
    return f"{key.prefix}…\t{key.id}\t{key.namespace}\t{state}\t{key.created_at:%Y-%m-%d %H:%M:%S}\t{key.label or ''}"


def _revoke(session, reference: str):
    """The key `reference` names, revoked; a reference naming none or several is an error."""
    from service.store import api_keys as key_store

    reference = reference.strip().rstrip("…")  # as `keys list` shows it
    found = key_store.find_keys(session=session, reference=reference) if reference else []
    if not found:
        raise LookupError(f"no API key {reference!r}: give its id or the prefix `reverie keys list` shows")
    if len(found) > 1:
        ids = ", ".join(str(key.id) for key in found)
        raise LookupError(f"{reference!r} names {len(found)} keys ({ids}): give the id")
    return key_store.revoke_key(session=session, key_id=found[0].id)


def cmd_keys(args: argparse.Namespace, sessions) -> int:
    from service.api.schemas import ApiKeyCreated, ApiKeyOut
    from service.store import api_keys as key_store

    with sessions() as session:
        if args.keys_command == "create":
            row, key = key_store.create_key(session=session, namespace=args.namespace, label=args.label)
            out = ApiKeyCreated(**ApiKeyOut.of(row).model_dump(), key=key)
            keys = [out]
        elif args.keys_command == "revoke":
            try:
                keys = [ApiKeyOut.of(_revoke(session, args.reference))]
            except LookupError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
        else:
            keys = [ApiKeyOut.of(row) for row in key_store.list_keys(session=session, namespace=args.namespace)]
    if args.json:
        payload = [key.model_dump(mode="json") for key in keys]
        print(json.dumps(payload if args.keys_command == "list" else payload[0], indent=2))
    elif args.keys_command == "create":
        print(keys[0].key)
        print(f"key {keys[0].prefix}… ({keys[0].id}) for namespace {keys[0].namespace!r}: shown this once, "
              "the store keeps only its hash", file=sys.stderr)
    elif args.keys_command == "revoke":
        print(f"key {keys[0].prefix}… ({keys[0].id}) of {keys[0].namespace!r} revoked: refused from its next request")
    else:
        print("\n".join(_line(key) for key in keys) if keys else "no API keys in the store")
    return 0


def add_parser(commands, func) -> None:
    """`reverie keys ...` under `commands`; `func(args)` runs them."""
    keys = commands.add_parser("keys", help="API keys in the store").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="make a key for a namespace and print it (once)")
    create.add_argument("--namespace", required=True, type=_namespace, help="the namespace its requests are served in")
    create.add_argument("--label", type=_label, help="what the key is for (shown in listings)")
    listing = keys.add_parser("list", help="the store's keys, newest first (never the keys themselves)")
    listing.add_argument("--namespace", type=_namespace, help="only this namespace's keys")
    revoke = keys.add_parser("revoke", help="revoke a key: refused from its next request, on every replica")
    revoke.add_argument("reference", metavar="PREFIX-OR-ID", help="the key's id, or the prefix `reverie keys list` shows")
    for sub in (create, listing, revoke):
        sub.add_argument("--json", action="store_true", help="print JSON, as the admin API returns it")
        sub.add_argument("--database-url", help="override REVERIE_DATABASE_URL")
        sub.set_defaults(func=func)
