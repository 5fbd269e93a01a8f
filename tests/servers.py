"""Real servers on loopback for tests: uvicorn in a thread, or `reverie serve` in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(base_url: str, timeout_s: float = 120, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{base_url} not ready after {timeout_s}s")


@contextmanager
def served_with_store(settings):
    """The app for `settings` on loopback over its store, migrated first: yields (base URL, sessionmaker)."""
    from service.app import create_app
    from service.store.db import make_engine, make_sessionmaker, upgrade

    upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    try:
        with server_in_thread(create_app(settings)) as base_url:
            yield base_url, make_sessionmaker(engine)
    finally:
        engine.dispose()


@contextmanager
def server_in_thread(app, wait: bool = True):
    """Serve `app` with uvicorn on a free loopback port; yields its base URL once ready (or started)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        if wait:
            wait_ready(base_url)
        else:
            deadline = time.monotonic() + 30
            while not server.started and time.monotonic() < deadline:
                time.sleep(0.05)
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def server_process(env: dict[str, str], port: int, log_path: Path):
    """`reverie serve` as a real process (killable with SIGKILL); yields the Popen."""
    full_env = {**os.environ, **env, "REVERIE_PORT": str(port), "REVERIE_HOST": "127.0.0.1"}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve"], cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_ready(f"http://127.0.0.1:{port}", process=process)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
