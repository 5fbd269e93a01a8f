"""Episode search matches what was said, not how the store encodes it: `Zürich` and quotes are found,
and `role` (a key of every message's JSON) matches nothing. SQLite and Postgres."""

from __future__ import annotations

import pytest

from service.store.db import make_engine, make_sessionmaker
from service.store.episodes import list_episodes, upsert_episodes
from tests.factories import completed, make_record


@pytest.fixture
def sessions(database_url):
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def say(sessions, text: str, response: str = "ok"):
    record = completed(make_record(messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]), response=response)
    with sessions() as session, session.begin():
        upsert_episodes(session=session, records=[record])
    return record.id


@pytest.mark.parametrize(
    "q, expected",
    [
        ("Zürich", {"zurich"}),
        ("zürich", {"zurich"}),
        ('"the blue one"', {"quoted"}),
        ("50%", {"percent"}),
        ("role", set()),
        ("content", set()),
        ("user", set()),
        ("be brief", {"zurich", "quoted", "percent", "answer"}),
        ("Auf Wiedersehen", {"answer"}),
    ],
)
def test_search_matches_message_text(sessions, q, expected):
    ids = {
        "zurich": say(sessions, "I moved to Zürich last spring."),
        "quoted": say(sessions, 'She said "the blue one" twice.'),
        "percent": say(sessions, "Only 50% of it."),
        "answer": say(sessions, "Say goodbye in German.", response="Auf Wiedersehen!"),
    }
    with sessions() as session:
        found = {row.id for row in list_episodes(session=session, q=q)}
    assert found == {ids[name] for name in expected}
