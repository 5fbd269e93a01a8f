"""`reverie`: serve the daemon, prepare the model, migrate the store.

    reverie serve                 # embedded default: SmolLM2, SQLite, 127.0.0.1:8000
    reverie model prepare [SRC]   # export the bundled GGUF (or a GGUF file) to a plain HF folder
    reverie db upgrade            # run Alembic migrations to head
    reverie worker                # claim and run sleep runs (a GPU machine in production)
    reverie sleep [--namespace NS] [--wait]    # fall asleep now
    reverie adapters list | activate VERSION|base [--namespace NS]
    reverie runs list | show ID | cancel ID [--json]
    reverie keys create --namespace NS [--label TEXT] | list | revoke PREFIX-OR-ID   # API keys, no restart
    reverie forget --namespace NS (--episode ID ... | --conversation ID | --all)
    reverie eval --dataset FILE [--general FILE] --nights N --out DIR [--config NAME]
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys

from service import __version__, cli_keys, cli_runs
from service.cli_shell import DATA_DIR_HELP, TRACEBACK_HELP, CliError, Parser, add_common_options, command_at, fail, require_existing_sqlite
from service.config import LOOPBACK_HOSTS, Settings, check_namespace
from service.logs import configure as configure_logging

log = logging.getLogger("reverie")
DATABASE_URL_HELP = "the store's SQLAlchemy URL (sqlite:///PATH or postgresql://...); overrides REVERIE_DATABASE_URL"


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        name: value
        for name in ("host", "port", "engine", "model", "database_url", "data_dir")
        if (value := getattr(args, name, None)) is not None
    }
    return Settings(**overrides)


def _admin_key(settings: Settings) -> str:
    """The configured admin key, or one generated once and kept (0600) in the data dir."""
    if settings.admin_key:
        return settings.admin_key
    path = settings.data_dir / "admin_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(24))
    return path.read_text().strip()


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from service.app import create_app
    from service.modelprep import prepare_model
    from service.store.db import upgrade

    settings = _settings(args)
    if settings.open_access and settings.host not in LOOPBACK_HOSTS and not cli_keys.store_has_keys(settings.resolved_database_url):
        log.error("no API keys are configured (REVERIE_API_KEYS, `reverie keys create`): refusing to listen on %s; "
                  "use 127.0.0.1", settings.host)
        return 2
    if problem := settings.admin_key_problem():
        log.error("%s: refusing to start", problem)
        return 2
    if settings.admin_key is None:
        settings = settings.model_copy(update={"admin_key": _admin_key(settings)})
        log.info("admin key (REVERIE_ADMIN_KEY unset) is in %s", settings.data_dir / "admin_key")
    if settings.engine == "local":
        prepare_model(settings)
    upgrade(settings.resolved_database_url)
    log.info("serving model %r on http://%s:%d", settings.model_name, settings.host, settings.port)
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port, log_level="info", log_config=None,
        timeout_graceful_shutdown=10,
    )
    return 0


def cmd_model_prepare(args: argparse.Namespace) -> int:
    from service.modelprep import prepare_model

    settings = _settings(args)
    print(prepare_model(settings, args.source))
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from service.store.db import upgrade

    settings = _settings(args)
    upgrade(settings.resolved_database_url, args.revision)
    print(f"database at {args.revision}")
    return 0


def _sessions(settings: Settings):
    """Sessions on a store that exists: no command but `serve` and `db upgrade` creates one."""
    from service.store.db import make_engine, make_sessionmaker

    require_existing_sqlite(settings.resolved_database_url)
    return make_sessionmaker(make_engine(settings.resolved_database_url))


def cmd_worker(args: argparse.Namespace) -> int:
    from service.store.db import upgrade
    from service.sleep.worker import build_worker

    settings = _settings(args)
    if settings.database_url is None:
        upgrade(settings.resolved_database_url)
    worker = build_worker(settings, _sessions(settings))
    log.info("worker %s polling %s", worker.owner, settings.resolved_database_url.split("@")[-1])
    if args.once:
        run = worker.run_once()
        print(f"{run.id} {run.state}" if run else "no run to claim")
        return 0
    if settings.worker_metrics_port:
        from prometheus_client import start_http_server

        from service.telemetry import worker_registry

        try:
            start_http_server(settings.worker_metrics_port, addr=settings.host, registry=worker_registry(worker))
        except OSError as exc:
            raise CliError(f"cannot serve the worker's metrics on {settings.host}:{settings.worker_metrics_port} "
                           f"({exc.strerror}): set REVERIE_WORKER_METRICS_PORT to a free port, or 0 for none") from None
        log.info("worker metrics on http://%s:%d/metrics", settings.host, settings.worker_metrics_port)
    worker.run_forever(poll_s=args.poll)
    return 0


def cmd_sleep(args: argparse.Namespace) -> int:
    import time

    from tqdm import tqdm

    from service.store import episodes as episode_store
    from service.store import runs as run_store
    from service.store import workers as worker_store
    from service.store.models import RunState

    settings = _settings(args)
    sessions = _sessions(settings)
    with sessions() as session:
        if not episode_store.has_episodes(session=session, namespace=args.namespace):
            raise CliError(f"namespace {args.namespace!r} has no episodes: nothing to learn (is the name right?)")
        run, created = run_store.enqueue_run(session=session, namespace=args.namespace, trigger="manual")
    print(f"run {run.id} {'queued' if created else 'already ' + run.state} for namespace {run.namespace!r}")
    if not args.wait:
        return 0
    try:
        with tqdm(desc=run.state, unit="step") as bar:
            while True:
                with sessions() as session:
                    run = run_store.get_run(session=session, run_id=run.id)
                    shown = worker_store.liveness(session=session, lease_s=settings.worker_lease_s).state_of(run)
                bar.set_description(f"{shown}: {run.phase or '-'}")
                bar.total = run.total or None  # a phase of unknown length (setup, gate) shows a count, not 1/1
                bar.n = run.step
                bar.refresh()
                if run.state in RunState.FINAL:
                    break
                time.sleep(1)
    except KeyboardInterrupt:
        print(f"\nstopped following; run {run.id} goes on in the worker. Follow it with `reverie runs show {run.id}`, "
              f"stop it with `reverie runs cancel {run.id}`.", file=sys.stderr)
        return 130
    print(f"run {run.id} {run.state}" + (f": {run.error.splitlines()[0]}" if run.error else ""))
    return 0 if run.state in (RunState.PUBLISHED, RunState.REJECTED, RunState.CANCELLED) else 1


def cmd_runs(args: argparse.Namespace) -> int:
    settings = _settings(args)
    return cli_runs.cmd_runs(args, _sessions(settings), settings.worker_lease_s)


def cmd_keys(args: argparse.Namespace) -> int:
    return cli_keys.cmd_keys(args, _sessions(_settings(args)))


def _namespace(text: str) -> str:
    """A `--namespace` that names a run: the one pattern of service.config.NAMESPACE_PATTERN."""
    try:
        return check_namespace(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _version(text: str) -> int | None:
    """`adapters activate`'s VERSION: a number (`v3` too), or `base` (None: serve no adapter)."""
    if text == "base":
        return None
    try:
        return int(text.removeprefix("v"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a version: give a number, or `base`") from None


def cmd_adapters(args: argparse.Namespace) -> int:
    from service.store import adapters as adapter_store

    settings = _settings(args)
    with _sessions(settings)() as session:
        if args.adapters_command == "activate":
            try:
                activation = adapter_store.activate(session=session, namespace=args.namespace, version=args.version)
            except (LookupError, ValueError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            serves = f"v{activation.adapter.version}" if activation.adapter else "the base model (no adapter)"
            print(f"namespace {args.namespace!r} now serves {serves} (the API swaps at its next sync); "
                  f"{activation.returned} episodes only the rolled-over versions had learned are back in the backlog")
            return 0
        adapters = adapter_store.list_adapters(session=session, namespace=args.namespace)
        if not adapters:
            where = f" in namespace {args.namespace!r}" if args.namespace else ""
            print(f"no adapters{where} yet: a namespace gets its first when a sleep run publishes one (`reverie sleep`)")
        for a in adapters:
            recall = (a.metrics or {}).get("recall")
            print(f"{a.namespace}\tv{a.version}\t{a.state}\trank={a.rank}\texperts={a.experts}\trecall={recall}\t{a.path}")
    return 0


def _confirm_forget_all(namespace: str) -> None:
    """`forget --all` asks first; with no terminal to ask on, it needs --yes."""
    if not sys.stdin.isatty():
        raise CliError(f"refusing to forget every episode of {namespace!r} without --yes (no terminal to ask on)")
    answer = input(f"forget every episode of namespace {namespace!r} and retire the adapters built from them? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise CliError("nothing forgotten (answer y to forget, or pass --yes)")


def _uuid(text: str):
    import uuid

    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an episode id (a UUID, as the dashboard shows it)") from None


def cmd_forget(args: argparse.Namespace) -> int:
    from service.object_store import adapter_object_store
    from service.sleep.adapter_folders import remove_retired_folders
    from service.sleep.forgetting import forget
    from service.store.spool import Spool

    settings = _settings(args)
    if not (args.episode or args.conversation or args.all):
        print("error: name --episode ID, --conversation ID, or --all", file=sys.stderr)
        return 2
    if args.all and not args.yes:
        _confirm_forget_all(args.namespace)
    report = forget(
        session_factory=_sessions(settings),
        spool=Spool(settings.resolved_spool_dir),
        namespace=args.namespace,
        episode_ids=args.episode or None,
        conversation_id=args.conversation,
    )
    remove_retired_folders(report.retired_paths, adapter_object_store(settings))
    print(
        f"forgot {report.deleted} episodes ({report.spooled_removed} spooled) of {args.namespace!r}; "
        f"retired adapters {report.retired_versions or 'none'}; serving "
        f"{'v' + str(report.serving_version) if report.serving_version else 'the base model' if report.retired_versions else 'as before'}"
        + (f"; rebuild run {report.rebuild_run_id} queued" if report.rebuild_run_id else "")
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="reverie", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help=DATA_DIR_HELP)
    parser.add_argument("--traceback", action="store_true", help=TRACEBACK_HELP)
    parser.add_argument("--version", action="version", version=f"reverie {__version__}", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API (and, in the embedded default, the scheduler and worker)")
    serve.add_argument("--host", help="address to listen on; overrides REVERIE_HOST (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on; overrides REVERIE_PORT (default 8000)")
    serve.add_argument("--engine", choices=["local", "vllm"], help="what generates tokens; overrides REVERIE_ENGINE")
    serve.add_argument("--model", help="HF model folder or id (default: bundled SmolLM2-135M-Instruct)")
    serve.add_argument("--database-url", help=DATABASE_URL_HELP)
    serve.set_defaults(func=cmd_serve)

    model = commands.add_parser("model", help="model files").add_subparsers(dest="model_command", required=True)
    prepare = model.add_parser("prepare", help="export the model to a plain HF folder in the data dir, once")
    prepare.add_argument("source", nargs="?", help="a .gguf file or an HF folder (default: REVERIE_MODEL)")
    prepare.set_defaults(func=cmd_model_prepare)

    db = commands.add_parser("db", help="the episodic store").add_subparsers(dest="db_command", required=True)
    db_upgrade = db.add_parser("upgrade", help="apply Alembic migrations")
    db_upgrade.add_argument("revision", nargs="?", default="head", help="Alembic revision to reach (default: head)")
    db_upgrade.add_argument("--database-url", help=DATABASE_URL_HELP)
    db_upgrade.set_defaults(func=cmd_db_upgrade)

    worker = commands.add_parser("worker", help="claim and run sleep runs")
    worker.add_argument("--database-url", help=DATABASE_URL_HELP)
    worker.add_argument("--model", help="HF model folder the adapters are trained on (the served base)")
    worker.add_argument("--once", action="store_true", help="process at most one run, then exit")
    worker.add_argument("--poll", type=float, default=2.0, help="seconds between looks for a queued run")
    worker.set_defaults(func=cmd_worker)

    sleep = commands.add_parser("sleep", help="queue a sleep run now")
    sleep.add_argument("--namespace", default="default", type=_namespace, help="whose episodes to consolidate (default: default)")
    sleep.add_argument("--wait", action="store_true", help="follow the run to its end with a progress bar")
    sleep.add_argument("--database-url", help=DATABASE_URL_HELP)
    sleep.set_defaults(func=cmd_sleep)

    adapters = commands.add_parser("adapters", help="memory versions").add_subparsers(dest="adapters_command", required=True)
    listing = adapters.add_parser("list", help="adapter versions with state and metrics")
    listing.add_argument("--namespace", help="only this namespace's adapters")
    listing.add_argument("--database-url", help=DATABASE_URL_HELP)
    listing.set_defaults(func=cmd_adapters)
    activate = adapters.add_parser("activate", help="serve this version (rollback)")
    activate.add_argument("version", type=_version, help="a version number, or `base` for the base model (no adapter)")
    activate.add_argument("--namespace", default="default", help="the namespace to switch (default: default)")
    activate.add_argument("--database-url", help=DATABASE_URL_HELP)
    activate.set_defaults(func=cmd_adapters)

    forget_cmd = commands.add_parser("forget", help="forget episodes and the memory built from them")
    forget_cmd.add_argument("--namespace", default="default", help="whose episodes to forget (default: default)")
    forget_cmd.add_argument("--episode", action="append", type=_uuid, help="an episode id (repeatable)")
    forget_cmd.add_argument("--conversation", help="every episode of this conversation id")
    forget_cmd.add_argument("--all", action="store_true", help="every episode of the namespace (asks first, unless --yes)")
    forget_cmd.add_argument("--yes", action="store_true", help="do not ask before forgetting --all")
    forget_cmd.add_argument("--database-url", help=DATABASE_URL_HELP)
    forget_cmd.set_defaults(func=cmd_forget)
    cli_runs.add_parser(commands, cmd_runs)
    cli_keys.add_parser(commands, cmd_keys)
    commands.add_parser("eval", help="the knowledge-incorporation benchmark (reverie eval --help)", add_help=False)
    add_common_options(parser)
    return parser


def run_eval(argv: list[str], data_dir: str | None) -> int:
    """`reverie eval ...`: the trainer's benchmark, on the model the service prepared unless --model."""
    from trainer.benchmark import main as benchmark

    if "--model" not in argv and not any(a.startswith("--model=") for a in argv) and "-h" not in argv and "--help" not in argv:
        from service.modelprep import prepare_model

        settings = Settings(**({"data_dir": data_dir} if data_dir else {}))
        argv = [*argv, "--model", str(prepare_model(settings))]
    return benchmark(argv)


def _guarded(args: argparse.Namespace, call) -> int:
    """Run a command: an error becomes one line saying what to do (cli_shell), a traceback only with --traceback."""
    try:
        return call()
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if getattr(args, "traceback", False):
            raise
        try:
            database_url = _settings(args).resolved_database_url
        except Exception:
            database_url = None
        return fail(exc, database_url)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    at = command_at(argv)
    if at is not None and argv[at] == "eval":  # the trainer's benchmark parses its own arguments
        top = build_parser().parse_args(argv[: at + 1])
        configure_logging("text")
        return _guarded(top, lambda: run_eval(argv[at + 1 :], top.data_dir))
    args = build_parser().parse_args(argv)

    def run() -> int:
        log_format = Settings().log_format
        if log_format == "auto":
            log_format = "text" if sys.stderr.isatty() else "json"
        configure_logging(log_format)
        return args.func(args)

    return _guarded(args, run)


if __name__ == "__main__":
    sys.exit(main())
