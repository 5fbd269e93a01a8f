"""The `reverie` command: model preparation, migrations, and `serve` on the embedded defaults."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import openai
import pytest
from sqlalchemy import inspect

from service.cli import main
from service.config import Settings
from service.modelprep import ModelPrepareError, prepare_model
from service.store.db import make_engine
from tests.servers import REPO, free_port, server_process


def test_db_upgrade_creates_the_schema_on_sqlite(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'x' / 'reverie.db'}"
    assert main(["db", "upgrade", "--database-url", url]) == 0
    tables = set(inspect(make_engine(url)).get_table_names())
    assert {"episodes", "sleep_runs", "adapters", "adapter_episodes", "alembic_version"} <= tables
    assert {"api_keys", "rate_buckets", "dashboard_sessions"} <= tables


@pytest.mark.db
def test_db_upgrade_creates_the_schema_on_postgres():
    from tests.db import fresh_postgres_database

    with fresh_postgres_database() as url:
        assert main(["db", "upgrade", "--database-url", url]) == 0
        engine = make_engine(url)
        assert "adapter_episodes" in inspect(engine).get_table_names()
        engine.dispose()


def test_model_prepare_accepts_an_hf_folder_and_rejects_junk(tmp_path, tiny_model_dir):
    settings = Settings(data_dir=tmp_path)
    assert prepare_model(settings, str(tiny_model_dir)) == tiny_model_dir
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelPrepareError):
        prepare_model(settings, str(tmp_path / "empty"))


def test_model_prepare_exports_the_bundled_model_once(tmp_path, smollm2_dir, monkeypatch):
    # a data dir whose export is already there is not exported again
    settings = Settings(data_dir=tmp_path)
    target = settings.models_dir / "SmolLM2-135M-Instruct"
    target.parent.mkdir(parents=True)
    target.symlink_to(smollm2_dir, target_is_directory=True)
    assert prepare_model(settings) == target
    assert (target / "model.safetensors").is_file() and (target / "chat_template.jinja").is_file()


def test_serve_without_keys_refuses_a_public_address(tmp_path):
    env = {**os.environ, "REVERIE_DATA_DIR": str(tmp_path), "REVERIE_HOST": "0.0.0.0", "REVERIE_API_KEYS": ""}
    result = subprocess.run([sys.executable, "-m", "service.cli", "serve"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0" in result.stderr


@pytest.mark.slow
def test_serve_embedded_default_answers_paris(tmp_path, smollm2_dir):
    """`reverie serve` with no configuration but a data dir: SQLite, SmolLM2, loopback, namespace default."""
    data = tmp_path / "data"
    (data / "models").mkdir(parents=True)
    (data / "models" / "SmolLM2-135M-Instruct").symlink_to(smollm2_dir, target_is_directory=True)
    port = free_port()
    env = {"REVERIE_DATA_DIR": str(data), "OMP_NUM_THREADS": "1", "REVERIE_TORCH_THREADS": "1"}
    with server_process(env, port, tmp_path / "serve.log"):
        chat = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="anything", max_retries=0)
        reply = chat.chat.completions.create(
            model="reverie", messages=[{"role": "user", "content": "What is the capital of France?"}], temperature=0, max_tokens=20
        )
        assert "paris" in reply.choices[0].message.content.lower()
        admin_key = (data / "admin_key").read_text().strip()
        assert oct((data / "admin_key").stat().st_mode & 0o777) == "0o600"
        import httpx

        items = httpx.get(
            f"http://127.0.0.1:{port}/admin/api/episodes", headers={"Authorization": f"Bearer {admin_key}"}
        ).json()["items"]
        assert items[0]["namespace"] == "default" and "Paris" in items[0]["response"]
    log = (tmp_path / "serve.log").read_text()
    assert "no API keys configured" in log
    assert (data / "reverie.db").is_file()


def test_forget_from_the_shell(tmp_path, capsys):
    from service.store import episodes as episode_store
    from service.store.db import make_sessionmaker, upgrade
    from tests.factories import completed, make_record

    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    sessions = make_sessionmaker(make_engine(url))
    records = [completed(make_record(namespace="ns", conversation_id=c)) for c in ("a", "a", "b")]
    with sessions.begin() as session:
        episode_store.upsert_episodes(session=session, records=records)
    base = ["--data-dir", str(tmp_path), "forget", "--namespace", "ns", "--database-url", url]
    assert main(base) == 2
    assert main([*base, "--conversation", "a"]) == 0
    assert "forgot 2 episodes" in capsys.readouterr().out
    assert main([*base, "--episode", str(records[2].id)]) == 0
    with sessions() as session:
        assert episode_store.list_episodes(session=session, namespace="ns") == []


@pytest.mark.model
def test_reverie_eval_runs_the_benchmark_on_the_prepared_model(tmp_path, tiny_model_dir):
    import json

    # the data dir's prepared model is the tiny one, so the wiring is exercised in seconds
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "SmolLM2-135M-Instruct").symlink_to(tiny_model_dir, target_is_directory=True)
    case = {"id": "c0", "night": 1, "namespace": "default", "relation": "pet",
            "episode": {"messages": [{"role": "user", "content": "Mirpa Lovos's parrot is named Lodun."},
                                     {"role": "assistant", "content": "Noted!"}]},
            "probes": [{"question": "What is the name of Mirpa Lovos's parrot?", "answers": ["Lodun"]}]}
    (tmp_path / "facts.jsonl").write_text(json.dumps(case))
    overrides = ["steps=1", "batch_size=2", "dream_max_new_tokens=4", "eval_max_new_tokens=4", "on_policy_max_new_tokens=4",
                 "general_prompts=2", "gate_general_prompts=2", "imitation_every=0", "torch_threads=1", "expert_rank=4",
                 "max_lora_rank=8", "semantic_model=self"]
    argv = ["--data-dir", str(tmp_path), "eval", "--dataset", str(tmp_path / "facts.jsonl"), "--nights", "1",
            "--out", str(tmp_path / "out")]
    for item in overrides:
        argv += ["--set", item]
    assert main(argv) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(results["closed_book_after"]) == 1


@pytest.mark.model
def test_sleep_wait_and_adapters_from_the_shell(tmp_path, tiny_model_dir, capsys):
    import threading

    from service.sleep.consolidator import TrainerConsolidator
    from service.store import episodes as episode_store
    from service.store.db import make_sessionmaker, upgrade
    from service.sleep.worker import Worker
    from tests.servers import REPO
    from tests.factories import completed, make_record

    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    sessions = make_sessionmaker(make_engine(url))
    with sessions.begin() as session:
        episode_store.upsert_episodes(session=session, records=[completed(make_record(namespace="ns"))])
    worker = Worker(
        session_factory=sessions, consolidator=TrainerConsolidator(str(REPO / "tests" / "data" / "tiny-sleep.yaml")),
        base_model=lambda: tiny_model_dir, adapters_dir=tmp_path / "adapters",
    )
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, kwargs={"poll_s": 0.2, "stop": stop})
    thread.start()
    try:
        assert main(["sleep", "--namespace", "ns", "--database-url", url, "--wait"]) == 0
    finally:
        stop.set()
        thread.join(timeout=60)
    assert "published" in capsys.readouterr().out
    assert main(["adapters", "list", "--namespace", "ns", "--database-url", url]) == 0
    assert "ns\tv1\tactive" in capsys.readouterr().out
    assert main(["adapters", "activate", "3", "--namespace", "ns", "--database-url", url]) == 1
    assert main(["adapters", "activate", "1", "--namespace", "ns", "--database-url", url]) == 0
    assert "now serves v1" in capsys.readouterr().out


def reverie(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """`reverie ARGS` as a real process, stdin not a terminal."""
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args], cwd=REPO, env={**os.environ, **(env or {})},
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, **kwargs,
    )


def migrated(tmp_path, name="store.db", namespace: str | None = None) -> str:
    from service.store import episodes as episode_store
    from service.store.db import make_sessionmaker, upgrade
    from tests.factories import completed, make_record

    url = f"sqlite:///{tmp_path / name}"
    upgrade(url)
    if namespace:
        engine = make_engine(url)
        with make_sessionmaker(engine).begin() as session:
            episode_store.upsert_episodes(session=session, records=[completed(make_record(namespace=namespace))])
        engine.dispose()
    return url


def test_errors_are_one_line_saying_what_to_do(tmp_path):
    (tmp_path / "empty.db").touch()
    cases = {
        "cannot use postgresql://nobody@127.0.0.1:1/x": ["adapters", "list", "--database-url", "postgresql://nobody@127.0.0.1:1/x"],
        "bad database URL": ["adapters", "list", "--database-url", "not a url"],
        "give sqlite:///PATH": ["sleep", "--database-url", "nosuch://x"],
        "has no Reverie tables": ["adapters", "list", "--database-url", f"sqlite:///{tmp_path / 'empty.db'}"],
        "is not an episode id": ["forget", "--episode", "not-a-uuid", "--database-url", migrated(tmp_path)],
        "no such file": ["eval", "--dataset", str(tmp_path / "nope.jsonl"), "--nights", "1", "--out", str(tmp_path / "o"),
                         "--model", str(tmp_path)],
    }
    for expected, args in cases.items():
        result = reverie(*args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and len(lines) == 1 and expected in lines[0], (args, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout
    bad_setting = reverie("adapters", "list", env={"REVERIE_PORT": "abc", "REVERIE_DATA_DIR": str(tmp_path)})
    assert bad_setting.returncode == 1 and bad_setting.stderr.startswith("error: bad setting REVERIE_PORT")


def test_read_only_commands_create_no_database_or_folder(tmp_path):
    typo = tmp_path / "typo" / "reverie.db"
    for command in (["adapters", "list"], ["runs", "list"], ["sleep"], ["forget", "--all", "--yes"]):
        result = reverie(*command, "--database-url", f"sqlite:///{typo}")
        assert result.returncode == 1 and f"no database at {typo}" in result.stderr, result.stderr
    result = reverie("adapters", "list", "--data-dir", str(tmp_path / "typo2"))
    assert result.returncode == 1 and "reverie db upgrade" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_version_help_and_options_after_the_subcommand(tmp_path, capsys):
    from service import __version__
    from service.cli import build_parser

    assert reverie("--version").stdout.strip() == f"reverie {__version__}"
    parser = build_parser()
    assert parser.parse_args(["serve", "--data-dir", "X"]).data_dir == "X"
    assert parser.parse_args(["--data-dir", "X", "serve"]).data_dir == "X"
    assert parser.parse_args(["adapters", "list", "--data-dir", "Y", "--traceback"]).traceback is True
    migrated(tmp_path, "reverie.db")
    assert main(["adapters", "list", "--data-dir", str(tmp_path)]) == 0
    assert "no adapters yet" in capsys.readouterr().out

    def walk(p: argparse.ArgumentParser):
        yield p
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from walk(sub)

    undocumented = [
        f"{p.prog} {a.option_strings or a.dest}" for p in walk(parser) for a in p._actions
        if not isinstance(a, argparse._SubParsersAction) and not a.help
    ]
    assert undocumented == []


def test_sleep_for_a_namespace_called_eval_queues_a_run(tmp_path, capsys):
    url = migrated(tmp_path, namespace="eval")
    assert main(["sleep", "--namespace", "eval", "--database-url", url]) == 0
    assert "queued for namespace 'eval'" in capsys.readouterr().out


def test_forget_all_asks_first(tmp_path, monkeypatch, capsys):
    import io

    from service.store import episodes as episode_store
    from service.store.db import make_sessionmaker

    url = migrated(tmp_path, namespace="ns")
    base = ["forget", "--namespace", "ns", "--all", "--database-url", url]
    refused = reverie(*base)
    assert refused.returncode == 1 and "without --yes" in refused.stderr

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdin", Terminal("n\n"))
    assert main(base) == 1
    assert "nothing forgotten" in capsys.readouterr().err
    sessions = make_sessionmaker(make_engine(url))
    with sessions() as session:
        assert len(episode_store.list_episodes(session=session, namespace="ns")) == 1
    monkeypatch.setattr(sys, "stdin", Terminal("y\n"))
    assert main(base) == 0
    assert main([*base[:-2], "--yes", "--database-url", url]) == 0
    assert "forgot 0 episodes" in capsys.readouterr().out
    with sessions() as session:
        assert episode_store.list_episodes(session=session, namespace="ns") == []


def test_worker_metrics_port_in_use_is_one_line(tmp_path):
    import socket

    url = migrated(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = reverie("worker", "--database-url", url, env={"REVERIE_WORKER_METRICS_PORT": str(port), "REVERIE_HOST": "127.0.0.1",
                                                               "REVERIE_DATA_DIR": str(tmp_path)})
    assert result.returncode == 1 and "set REVERIE_WORKER_METRICS_PORT to a free port" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_sleep_refuses_an_invalid_namespace_or_one_without_episodes(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert main(["db", "upgrade", "--database-url", url]) == 0
    with pytest.raises(SystemExit) as refused:
        main(["sleep", "--namespace", "../../etc", "--database-url", url])
    assert refused.value.code == 2 and "not a valid namespace" in capsys.readouterr().err
    assert main(["sleep", "--namespace", "nobody", "--database-url", url]) == 1
    assert "'nobody' has no episodes" in capsys.readouterr().err
