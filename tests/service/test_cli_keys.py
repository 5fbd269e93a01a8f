"""`reverie keys create | list | revoke` on SQLite and Postgres: the key printed once, listings without
it, revoking by prefix or id, and what `reverie serve` makes of a store with keys."""

from __future__ import annotations

import json

import pytest

from service.cli import main
from service.cli_keys import store_has_keys
from service.store import api_keys as key_store
from service.store.db import make_engine, make_sessionmaker


def test_create_list_and_revoke(database_url, capsys):
    url = ["--database-url", database_url]
    assert main(["keys", "list", *url]) == 0
    assert capsys.readouterr().out.strip() == "no API keys in the store"
    assert not store_has_keys(database_url)

    assert main(["keys", "create", "--namespace", "alice", "--label", "laptop", *url]) == 0
    printed = capsys.readouterr()
    key = printed.out.strip()
    assert key_store.could_be_a_store_key(key) and "shown this once" in printed.err and key not in printed.err
    assert main(["keys", "create", "--namespace", "bob", "--json", *url]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["namespace"] == "bob" and created["key"].startswith(created["prefix"])
    engine = make_engine(database_url)
    with make_sessionmaker(engine)() as session:
        assert key_store.namespace_of_key(session=session, key=key) == "alice"
    engine.dispose()
    assert store_has_keys(database_url)

    assert main(["keys", "list", *url]) == 0
    listing = capsys.readouterr().out
    lines = listing.splitlines()
    assert [line.split("\t")[2:4] for line in lines] == [["bob", "active"], ["alice", "active"]]
    assert key not in listing and created["key"] not in listing and "laptop" in lines[1]
    assert main(["keys", "list", "--namespace", "bob", "--json", *url]) == 0
    assert [k["id"] for k in json.loads(capsys.readouterr().out)] == [created["id"]]

    shown = lines[1].split("\t")[0]  # `rk_AbCd1234…`, pasted as the listing shows it
    assert main(["keys", "revoke", shown, *url]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["keys", "revoke", created["id"], "--json", *url]) == 0
    assert json.loads(capsys.readouterr().out)["revoked_at"] is not None
    assert not store_has_keys(database_url)
    assert main(["keys", "list", *url]) == 0
    assert all("\trevoked " in line for line in capsys.readouterr().out.splitlines())

    assert main(["keys", "revoke", "rk_nothing", *url]) == 1
    assert "no API key" in capsys.readouterr().err
    assert main(["keys", "revoke", "rk_", *url]) == 1  # names both: the id is needed
    assert "names 2 keys" in capsys.readouterr().err


def test_bad_arguments_are_one_line(tmp_path, capsys):
    for argv in (["keys", "create", "--namespace", "../etc"], ["keys", "create", "--namespace", "a", "--label", "x" * 201],
                 ["keys", "create"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
    assert main(["keys", "list", "--database-url", f"sqlite:///{tmp_path / 'missing.db'}"]) == 1
    assert "reverie db upgrade" in capsys.readouterr().err
    assert not store_has_keys(f"sqlite:///{tmp_path / 'missing.db'}") and not (tmp_path / "missing.db").exists()
