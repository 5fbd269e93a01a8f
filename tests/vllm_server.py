"""A real vLLM OpenAI server for tests, run from `.venv-vllm` (made by `deploy/setup-vllm.sh`)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from service.config import BUNDLED_CHAT_TEMPLATE
from tests.servers import REPO, free_port

VLLM_PYTHON = Path(os.environ.get("REVERIE_VLLM_VENV", REPO / ".venv-vllm")) / "bin" / "python"
SERVED_NAME = "smollm2"
MAX_LORA_RANK = 64
MAX_MODEL_LEN = 1024
# How docs/vllm.md and the compose files start vLLM for tools on SmolLM2: its calls parsed in Hermes markup,
# the shipped template (SmolLM2's own ignores tools) given to vLLM as to the API (REVERIE_CHAT_TEMPLATE).
TOOL_ARGS = (
    "--enable-auto-tool-choice", "--tool-call-parser", "hermes",
    "--chat-template", str(BUNDLED_CHAT_TEMPLATE),
)


def require_vllm() -> None:
    """Skip when vLLM is not installed here, except under CI, where a missing vLLM is a failure."""
    if VLLM_PYTHON.is_file():
        return
    reason = f"no vLLM environment at {VLLM_PYTHON.parent.parent}; create it with `bash deploy/setup-vllm.sh`"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


class VLLMServer:
    """vLLM serving `model_dir` with runtime LoRA loading on a loopback port, as a real process."""

    def __init__(
        self, model_dir: Path, log_path: Path, *, port: int | None = None, timeout_s: float = 240,
        extra_args: Sequence[str] = (),
    ):
        self.model_dir, self.log_path, self.timeout_s = model_dir, log_path, timeout_s
        self.extra_args = tuple(extra_args)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the server and wait for its `/health` (30-40 s on a CPU)."""
        env = {
            **os.environ,
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
            "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB; the default takes a large share of the machine
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "HF_HUB_OFFLINE": "1",
        }
        # The API venv's test settings pin one thread; vLLM's CPU backend manages its own.
        env.pop("OMP_NUM_THREADS", None)
        command = [
            str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir),
            "--served-model-name", SERVED_NAME,
            "--enable-lora", "--max-lora-rank", str(MAX_LORA_RANK), "--max-loras", "4",
            "--max-model-len", str(MAX_MODEL_LEN),
            "--host", "127.0.0.1", "--port", str(self.port),
            *self.extra_args,
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            # A session of its own, so a stuck server and its engine-core child can be killed together.
            self.process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + self.timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"vLLM exited with {self.process.returncode}; log:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"vLLM not healthy after {self.timeout_s}s; log:\n{self.log_tail()}")
            time.sleep(0.5)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the server and its engine-core child
            process.wait()

    def restart(self) -> None:
        """A new vLLM process on the same port: it has forgotten every runtime-loaded adapter."""
        self.stop()
        self.start()

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


@contextmanager
def vllm_server(
    model_dir: Path, log_path: Path, timeout_s: float = 240, extra_args: Sequence[str] = ()
) -> Iterator[VLLMServer]:
    """A started `VLLMServer` (with `extra_args` after the usual flags), stopped on exit."""
    server = VLLMServer(model_dir, log_path, timeout_s=timeout_s, extra_args=extra_args)
    try:
        server.start()
        yield server
    finally:
        server.stop()
