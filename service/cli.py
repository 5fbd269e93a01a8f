"""`reverie`: serve the daemon, prepare the model, migrate the store.

    reverie serve                 # embedded default: SmolLM2, SQLite, 127.0.0.1:8000
    reverie model prepare [SRC]   # export the bundled GGUF (or a GGUF file) to a plain HF folder
    reverie db upgrade            # run Alembic migrations to head
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys

from service.config import LOOPBACK_HOSTS, Settings

log = logging.getLogger("reverie")


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
    if settings.open_access and settings.host not in LOOPBACK_HOSTS:
        log.error("no API keys are configured (REVERIE_API_KEYS): refusing to listen on %s; use 127.0.0.1", settings.host)
        return 2
    if settings.admin_key is None:
        settings = settings.model_copy(update={"admin_key": _admin_key(settings)})
        log.info("admin key (REVERIE_ADMIN_KEY unset) is in %s", settings.data_dir / "admin_key")
    if settings.engine == "local":
        prepare_model(settings)
    upgrade(settings.resolved_database_url)
    log.info("serving model %r on http://%s:%d", settings.model_name, settings.host, settings.port)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info", timeout_graceful_shutdown=10)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reverie", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="override REVERIE_DATA_DIR")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API (and, in the embedded default, the scheduler and worker)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--engine", choices=["local", "vllm"])
    serve.add_argument("--model", help="HF model folder or id (default: bundled SmolLM2-135M-Instruct)")
    serve.add_argument("--database-url")
    serve.set_defaults(func=cmd_serve)

    model = commands.add_parser("model", help="model files").add_subparsers(dest="model_command", required=True)
    prepare = model.add_parser("prepare", help="export the model to a plain HF folder in the data dir, once")
    prepare.add_argument("source", nargs="?", help="a .gguf file or an HF folder (default: REVERIE_MODEL)")
    prepare.set_defaults(func=cmd_model_prepare)

    db = commands.add_parser("db", help="the episodic store").add_subparsers(dest="db_command", required=True)
    db_upgrade = db.add_parser("upgrade", help="apply Alembic migrations")
    db_upgrade.add_argument("revision", nargs="?", default="head")
    db_upgrade.add_argument("--database-url")
    db_upgrade.set_defaults(func=cmd_db_upgrade)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
