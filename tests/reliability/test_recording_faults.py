"""Recording under failure: disconnects, engine errors, a full queue, a dead store and spool,
Postgres stopped mid-traffic, and `kill -9` of the server mid-stream."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
import time

import httpx
import openai
import psycopg
import pytest
from sqlalchemy import select

from service.app import create_app
from service.config import Settings
from service.serving.engines.local import LocalEngine
from service.store.db import make_engine, make_sessionmaker
from service.store.models import Episode
from tests.figures import record_figure
from tests.servers import free_port, server_in_thread, server_process

pytestmark = [pytest.mark.model]

MESSAGES = [{"role": "user", "content": "Tell me a long story."}]


def sessions_for(url):
    return make_sessionmaker(make_engine(url))


def all_episodes(url) -> list[Episode]:
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            return list(session.scalars(select(Episode)))
    finally:
        engine.dispose()


def settings_for(tmp_path, tiny_model_dir, url, **overrides) -> Settings:
    values = dict(data_dir=tmp_path / "data", database_url=url, model=str(tiny_model_dir), default_max_tokens=16)
    values.update(overrides)
    return Settings(**values)


def test_client_disconnect_leaves_an_aborted_episode_with_partial_text(tmp_path, tiny_model_dir, database_url):
    app = create_app(settings_for(tmp_path, tiny_model_dir, database_url))
    with server_in_thread(app) as base_url:
        body = {"model": "reverie", "messages": MESSAGES, "max_tokens": 400, "temperature": 1.0, "seed": 1, "stream": True}
        seen = ""
        with httpx.stream("POST", f"{base_url}/v1/chat/completions", json=body) as response:
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    chunk = json.loads(line[6:])
                    seen += chunk["choices"][0]["delta"].get("content") or ""
                    if len(seen) > 20:
                        break
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            episodes = all_episodes(database_url)
            if episodes and episodes[0].status != "pending":
                break
            time.sleep(0.1)
    [episode] = episodes
    assert episode.status == "aborted"
    assert episode.response.startswith(seen)
    assert episode.completion_tokens is None


class FailingEngine(LocalEngine):
    """A real engine that breaks after its first chunk: a failure we cannot cause from outside."""

    async def generate(self, request):
        count = 0
        async for chunk in super().generate(request):
            count += 1
            if count > 2:
                raise RuntimeError("CUDA error: an illegal memory access was encountered")
            yield chunk


def test_engine_error_leaves_an_error_episode(tmp_path, tiny_model_dir, database_url):
    settings = settings_for(tmp_path, tiny_model_dir, database_url)
    app = create_app(settings, engine=FailingEngine(tiny_model_dir))
    with server_in_thread(app) as base_url:
        r = httpx.post(f"{base_url}/v1/chat/completions", json={"model": "reverie", "messages": MESSAGES, "max_tokens": 50, "temperature": 1.0})
        assert r.status_code == 500 and r.json()["error"]["code"] == "engine_error"
        body = {"model": "reverie", "messages": MESSAGES, "max_tokens": 50, "temperature": 1.0, "stream": True}
        with httpx.stream("POST", f"{base_url}/v1/chat/completions", json=body) as response:
            lines = [line for line in response.iter_lines() if line]
        assert "[DONE]" not in lines[-1] and json.loads(lines[-1][6:])["error"]["code"] == "engine_error"
    episodes = all_episodes(database_url)
    assert [e.status for e in episodes] == ["error", "error"]
    assert all("illegal memory access" in e.error for e in episodes)


def test_queue_full_is_429_and_the_server_keeps_serving(tmp_path, tiny_model_dir, database_url):
    app = create_app(settings_for(tmp_path, tiny_model_dir, database_url, max_queue=1))
    with server_in_thread(app) as base_url:

        async def burst():
            async with httpx.AsyncClient(timeout=60) as http:
                body = {"model": "reverie", "messages": MESSAGES, "max_tokens": 60, "temperature": 1.0}
                return await asyncio.gather(*(http.post(f"{base_url}/v1/chat/completions", json=body) for _ in range(8)))

        responses = asyncio.run(burst())
        statuses = sorted(r.status_code for r in responses)
        assert 429 in statuses and 200 in statuses and set(statuses) <= {200, 429}
        assert all(r.json()["error"]["type"] == "rate_limit_error" for r in responses if r.status_code == 429)
        ok = httpx.post(f"{base_url}/v1/chat/completions", json={"model": "reverie", "messages": MESSAGES, "max_tokens": 2})
        assert ok.status_code == 200
    statuses = sorted(e.status for e in all_episodes(database_url))
    assert "pending" not in statuses
    assert statuses.count("complete") == sum(r.status_code == 200 for r in responses) + 1


def test_engine_that_cannot_load_gives_503(tmp_path, database_url):
    app = create_app(settings_for(tmp_path, tmp_path / "no-such-model", database_url))
    with server_in_thread(app, wait=False) as base_url:
        time.sleep(0.5)
        assert httpx.get(f"{base_url}/readyz").status_code == 503
        r = httpx.post(f"{base_url}/v1/chat/completions", json={"model": "reverie", "messages": MESSAGES})
        assert r.status_code == 503 and r.json()["error"]["code"] == "engine_not_ready"


def test_store_and_spool_both_down_is_503_with_no_answer(tmp_path, tiny_model_dir):
    blocker = tmp_path / "spool-is-a-file"
    blocker.write_text("")
    settings = settings_for(tmp_path, tiny_model_dir, "postgresql://root@127.0.0.1:1/nowhere", spool_dir=blocker)
    app = create_app(settings)
    with server_in_thread(app, wait=False) as base_url:
        deadline = time.monotonic() + 60
        while not app.state.engine.ready and time.monotonic() < deadline:
            time.sleep(0.1)
        assert httpx.get(f"{base_url}/readyz").json()["store"] == "unavailable"
        for stream in (False, True):
            r = httpx.post(f"{base_url}/v1/chat/completions", json={"model": "reverie", "messages": MESSAGES, "stream": stream})
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "store_unavailable"
        assert app.state.engine.queue_depth == 0  # the generation begun beside the failed record was closed


class WatchedEngine(LocalEngine):
    """A real engine that tells when it was first asked to generate."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked = threading.Event()

    async def generate(self, request):
        self.asked.set()
        async for chunk in super().generate(request):
            yield chunk


@pytest.mark.db
@pytest.mark.parametrize("stream", [False, True])
def test_the_engine_starts_while_the_pending_row_commits_and_nothing_is_sent_before_it(
    tmp_path, tiny_model_dir, postgres_url, stream
):
    """The pending row's commit runs beside the engine's first token (it is not on the time to first
    token), and no byte of the reply leaves before that commit: here the row waits on a locked table."""
    engine = WatchedEngine(tiny_model_dir)
    app = create_app(settings_for(tmp_path, tiny_model_dir, postgres_url), engine=engine)
    answered = threading.Event()
    lines: list[str] = []

    def ask(base_url: str) -> None:
        body = {"model": "reverie", "messages": MESSAGES, "max_tokens": 4, "stream": stream}
        with httpx.stream("POST", f"{base_url}/v1/chat/completions", json=body, timeout=60) as response:
            answered.set()  # the status line and headers: the first bytes of the reply
            lines.extend(line for line in response.iter_lines() if line)

    with server_in_thread(app) as base_url, psycopg.connect(postgres_url) as lock:
        lock.execute("LOCK TABLE episodes IN ACCESS EXCLUSIVE MODE")  # held until the rollback below
        client = threading.Thread(target=ask, args=(base_url,))
        client.start()
        assert engine.asked.wait(30), "the engine waited for the pending row's commit"
        assert not answered.wait(1.0), "a reply left before its pending row was committed"
        lock.rollback()
        client.join(timeout=60)
    assert answered.is_set() and (lines[-1] == "data: [DONE]" if stream else json.loads(lines[0])["choices"])
    [episode] = all_episodes(postgres_url)
    assert episode.status == "complete" and episode.completion_tokens > 0


def pg_cluster(action: str) -> None:
    version = subprocess.run(["ls", "/etc/postgresql"], capture_output=True, text=True).stdout.split()[0]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action, *(["-m", "fast"] if action == "stop" else [])], check=True)


def wait_for_postgres(url: str, up: bool, timeout_s: float = 60) -> None:
    import psycopg

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            if up:
                return
        except psycopg.OperationalError:
            if not up:
                return
        time.sleep(0.2)
    raise TimeoutError("postgres did not change state")


@pytest.mark.db
@pytest.mark.slow
def test_postgres_stopped_during_traffic_spools_then_drains_exactly_once(tmp_path, tiny_model_dir, postgres_url):
    settings = settings_for(tmp_path, tiny_model_dir, postgres_url, spool_drain_interval_s=0.5)
    app = create_app(settings)
    ids: list[str] = []
    with server_in_thread(app) as base_url:
        chat = openai.OpenAI(base_url=f"{base_url}/v1", api_key="any", max_retries=0)

        def talk(n: int, stream: bool = False):
            for _ in range(n):
                if stream:
                    chunks = list(chat.chat.completions.create(model="reverie", messages=MESSAGES, max_tokens=4, stream=True))
                    ids.append(chunks[0].id)
                else:
                    ids.append(chat.chat.completions.create(model="reverie", messages=MESSAGES, max_tokens=4).id)

        talk(5)
        pg_cluster("stop")
        try:
            wait_for_postgres(postgres_url, up=False)
            talk(10)
            talk(5, stream=True)
            assert app.state.recorder.spool.depth() >= 15
            assert httpx.get(f"{base_url}/readyz").json()["store"] == "spooling"
        finally:
            pg_cluster("start")
            wait_for_postgres(postgres_url, up=True)
        talk(5)
        deadline = time.monotonic() + 30
        while app.state.recorder.spool.depth() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert app.state.recorder.spool.depth() == 0
    episodes = all_episodes(postgres_url)
    recorded = {f"chatcmpl-{e.id.hex}" for e in episodes}
    assert len(ids) == 25 and set(ids) == recorded
    assert len(episodes) == 25 and all(e.status == "complete" for e in episodes)


@pytest.mark.db
@pytest.mark.slow
@pytest.mark.parametrize("streams", [50, 200])
def test_kill_9_during_concurrent_streams_keeps_every_finished_stream(tmp_path, tiny_model_dir, postgres_url, streams):
    port = free_port()
    env = {
        "REVERIE_MAX_QUEUE": str(streams + 8),
        "REVERIE_DATABASE_URL": postgres_url,
        "REVERIE_MODEL": str(tiny_model_dir),
        "REVERIE_DATA_DIR": str(tmp_path / "data"),
        "REVERIE_ADMIN_KEY": "admin-0123456789abcdef",
        "OMP_NUM_THREADS": "1",
        "REVERIE_TORCH_THREADS": "1",
    }
    finished: list[str] = []
    with server_process(env, port, tmp_path / "server.log") as process:

        async def one_stream(http: httpx.AsyncClient, i: int) -> None:
            body = {"model": "reverie", "messages": MESSAGES, "max_tokens": 40 + i % 50, "temperature": 1.0, "seed": i, "stream": True}
            response_id, done = None, False
            try:
                async with http.stream("POST", f"http://127.0.0.1:{port}/v1/chat/completions", json=body) as response:
                    async for line in response.aiter_lines():
                        if line.startswith("data: {") and response_id is None:
                            response_id = json.loads(line[6:])["id"]
                        done = done or line == "data: [DONE]"
            except httpx.HTTPError:
                pass
            if done:
                finished.append(response_id)

        async def storm():
            async with httpx.AsyncClient(timeout=300, limits=httpx.Limits(max_connections=streams + 10)) as http:
                tasks = [asyncio.create_task(one_stream(http, i)) for i in range(streams)]
                while len(finished) < streams // 5:
                    await asyncio.sleep(0.01)
                process.send_signal(signal.SIGKILL)
                await asyncio.gather(*tasks)

        asyncio.run(storm())
        process.wait(timeout=10)
    assert streams // 5 <= len(finished) < streams
    episodes = all_episodes(postgres_url)
    by_id = {f"chatcmpl-{e.id.hex}": e for e in episodes}
    missing = [i for i in finished if i not in by_id or by_id[i].status != "complete"]
    duplicated = len(finished) - len(set(finished)) + len(episodes) - len(by_id)
    record_figure(
        f"kill -9 of the API during {streams} concurrent streams",
        streams=streams, finished_with_done=len(finished), acknowledged_missing=len(missing), duplicated=duplicated,
        rows_left_pending=sum(e.status == "pending" for e in episodes),
    )
    assert missing == [] and duplicated == 0


def test_text_postgres_cannot_hold_is_stored_not_spooled_forever(tmp_path, tiny_model_dir, database_url):
    """A NUL byte (valid JSON, refused by Postgres text) once made the store look down and stuck the
    spool behind one record it could never drain; a lone surrogate killed the writer thread."""
    app = create_app(settings_for(tmp_path, tiny_model_dir, database_url))
    client_kwargs = dict(api_key="x", max_retries=0, timeout=30)
    with server_in_thread(app) as base_url:
        client = openai.OpenAI(base_url=f"{base_url}/v1", **client_kwargs)
        nul = client.chat.completions.create(model="reverie", messages=[{"role": "user", "content": "a\x00b"}], max_tokens=2)
        surrogate = httpx.post(
            f"{base_url}/v1/chat/completions",
            content=b'{"model": "reverie", "max_tokens": 2, "messages": [{"role": "user", "content": "a\\ud800b"}]}',
            headers={"content-type": "application/json"},
        )
        assert surrogate.status_code == 400, surrogate.text
        assert surrogate.json()["error"]["type"] == "invalid_request_error"
        after = client.chat.completions.create(model="reverie", messages=MESSAGES, max_tokens=2)
        assert app.state.recorder.spool.depth() == 0
        assert app.state.recorder.store_available
    stored = {f"chatcmpl-{e.id.hex}": e for e in all_episodes(database_url)}
    assert sorted(stored) == sorted([nul.id, after.id])
    assert stored[nul.id].status == "complete" and stored[after.id].status == "complete"
    assert stored[nul.id].messages[0]["content"] == "a\ufffdb"
