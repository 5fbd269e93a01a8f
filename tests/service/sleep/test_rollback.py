"""Rollback keeps memory (SQLite and Postgres): activating an earlier version, or the base model, returns
to the backlog the episodes only the rolled-over versions learned; rolling forward marks them learned
again; lineage rows stay for forgetting."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import func, select

from service.app import create_app
from service.cli import main
from service.config import Settings
from service.store import adapters as adapter_store
from service.store import episodes as episode_store
from service.store import runs as run_store
from service.store.db import make_engine, make_sessionmaker
from service.store.models import AdapterEpisode, Episode
from tests.factories import completed, make_record
from tests.servers import server_in_thread

ADMIN = {"Authorization": "Bearer adm"}


@pytest.fixture
def sessions(database_url):
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


def night(sessions, namespace: str, n: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """n new episodes, learned by a published version grown on the active one: (run id, episode ids)."""
    records = [completed(make_record(namespace=namespace)) for _ in range(n)]
    with sessions.begin() as session:
        episode_store.upsert_episodes(session=session, records=records)
    with sessions() as session:
        run_store.enqueue_run(session=session, namespace=namespace, trigger="manual")
        run = run_store.claim_run(session=session, owner="w", lease_s=60)
    with sessions() as session:
        adapter_store.publish(session=session, run_id=run.id, epoch=run.epoch, namespace=namespace, path=f"/x/{run.id}",
                              rank=4, experts=1, metrics={}, episode_ids=[r.id for r in records])
    return run.id, [r.id for r in records]


def consolidated(sessions, ids) -> list:
    with sessions() as session:
        by_id = {e.id: e.consolidated_by for e in session.scalars(select(Episode).where(Episode.id.in_(ids)))}
    return [by_id[i] for i in ids]


def test_rollback_returns_what_only_later_versions_learned(sessions):
    run1, first = night(sessions, "a", 3)
    run2, second = night(sessions, "a", 2)
    run3, third = night(sessions, "a", 1)
    night(sessions, "other", 2)
    with sessions() as session:
        back = adapter_store.activate(session=session, namespace="a", version=1)
        assert back.adapter.version == 1 and (back.returned, back.recovered) == (3, 0)
    assert consolidated(sessions, first) == [run1] * 3
    assert consolidated(sessions, second + third) == [None] * 3
    with sessions() as session:
        assert {b.namespace: b.episodes for b in episode_store.backlog(session=session)} == {"a": 3}
        assert session.scalar(select(func.count()).select_from(AdapterEpisode)) == 8  # lineage kept

    with sessions() as session:  # roll forward to v2: what v2 learned is learned again, v3's stays new
        forward = adapter_store.activate(session=session, namespace="a", version=2)
        assert (forward.returned, forward.recovered) == (0, 2)
    assert consolidated(sessions, first + second + third) == [run1] * 3 + [run2] * 2 + [None]

    with sessions() as session:  # the base model: everything the namespace learned goes back
        base = adapter_store.activate(session=session, namespace="a", version=None)
        assert base.adapter is None and base.returned == 5
        assert adapter_store.active_adapter(session=session, namespace="a") is None
        assert adapter_store.active_adapter(session=session, namespace="other") is not None
    assert consolidated(sessions, first + second + third) == [None] * 6

    # a new night after the rollback grows on the base model and learns the returned episodes
    run4, fourth = night(sessions, "a", 0)
    assert consolidated(sessions, first + second + third) == [None] * 6  # publish marks only its batch
    with sessions() as session:
        assert adapter_store.activate(session=session, namespace="a", version=3).recovered == 6
    assert consolidated(sessions, first + second + third) == [run1] * 3 + [run2] * 2 + [run3]


def test_activate_base_from_the_shell(database_url, sessions, capsys):
    night(sessions, "ns", 2)
    assert main(["adapters", "activate", "base", "--namespace", "ns", "--database-url", database_url]) == 0
    out = capsys.readouterr().out
    assert "now serves the base model" in out and "2 episodes" in out
    assert main(["adapters", "activate", "v1", "--namespace", "ns", "--database-url", database_url]) == 0
    assert "now serves v1" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["adapters", "activate", "latest", "--namespace", "ns", "--database-url", database_url])
    assert "give a number, or `base`" in capsys.readouterr().err


@pytest.mark.model
def test_the_api_rolls_back_to_the_base_model(tmp_path, tiny_model_dir, database_url, sessions):
    night(sessions, "alpha", 2)
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, model=str(tiny_model_dir),
                        admin_key="adm", scheduler=False, embedded_worker=False)
    with server_in_thread(create_app(settings)) as base_url:
        url = f"{base_url}/admin/api/adapters/base/activate"
        assert httpx.post(url, params={"namespace": "alpha"}).status_code == 401
        reply = httpx.post(url, params={"namespace": "alpha"}, headers=ADMIN)
        assert reply.status_code == 200, reply.text
        assert reply.json() == {"namespace": "alpha", "version": None, "returned_to_backlog": 2}
        adapters = httpx.get(f"{base_url}/admin/api/adapters", params={"namespace": "alpha"}, headers=ADMIN).json()
        assert [a["state"] for a in adapters["items"]] == ["candidate"]
        backlog = httpx.get(f"{base_url}/admin/api/backlog", headers=ADMIN).json()["items"]
        assert [(b["namespace"], b["episodes"]) for b in backlog] == [("alpha", 2)]
