"""Foundation benchmark: what the API and recording add to latency, and how fast the store writes.

    .venv/bin/python bench/bench_foundation.py [--requests 30] [--episodes 20000] [--out runs/bench-foundation.json]

Measured in one run, as ratios, on this machine (the numbers are in docs/benchmarks.md):
1. Latency and throughput of chat completions through the real HTTP API (uvicorn on loopback, the
   embedded default: SQLite store, recording on) against the same engine class called directly.
   Requests alternate between the two paths so that drift in the machine's speed hits both alike.
2. Episode write throughput of the recorder (group commit) on Postgres, with many concurrent writers
   (coroutines awaiting their own commit, as the API's request handlers do).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

from service.app import create_app  # noqa: E402
from service.config import Settings  # noqa: E402
from service.serving.engines.base import GenerationRequest, SamplingParams  # noqa: E402
from service.serving.engines.local import LocalEngine  # noqa: E402
from service.modelprep import prepare_model  # noqa: E402
from service.serving.recording import Recorder  # noqa: E402
from service.store.db import make_engine, make_sessionmaker, upgrade  # noqa: E402
from service.store.episodes import EpisodeRecord  # noqa: E402
from service.store.models import utcnow  # noqa: E402
from service.store.spool import Spool  # noqa: E402
from tests.servers import server_in_thread  # noqa: E402

PROMPTS = [
    "What is the capital of France?",
    "Name three primary colours.",
    "Write one sentence about the sea.",
    "What is two plus two?",
]
MAX_TOKENS = 32


async def direct_call(engine: LocalEngine, prompt: str) -> tuple[float, int]:
    started = time.perf_counter()
    tokens = 0
    request = GenerationRequest(
        messages=[{"role": "user", "content": prompt}], params=SamplingParams(max_tokens=MAX_TOKENS, temperature=0)
    )
    async for chunk in engine.generate(request):
        if chunk.usage:
            tokens = chunk.usage.completion_tokens
    return time.perf_counter() - started, tokens


def api_call(http: httpx.Client, base_url: str, prompt: str) -> tuple[float, int]:
    started = time.perf_counter()
    body = {"model": "reverie", "messages": [{"role": "user", "content": prompt}], "max_tokens": MAX_TOKENS, "temperature": 0}
    response = http.post(f"{base_url}/v1/chat/completions", json=body)
    response.raise_for_status()
    return time.perf_counter() - started, response.json()["usage"]["completion_tokens"]


def bench_latency(model_dir: Path, requests: int) -> dict:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(data_dir=Path(data_dir), model=str(model_dir), torch_threads=1)
        upgrade(settings.resolved_database_url)
        app = create_app(settings)
        direct_engine = LocalEngine(model_dir, torch_threads=1)
        loop = asyncio.new_event_loop()
        loop.run_until_complete(direct_engine.start())
        with server_in_thread(app) as base_url, httpx.Client(timeout=120) as http:
            for prompt in PROMPTS:  # warm both paths up
                api_call(http, base_url, prompt)
                loop.run_until_complete(direct_call(direct_engine, prompt))
            api, direct = [], []
            for i in range(requests):
                prompt = PROMPTS[i % len(PROMPTS)]
                api.append(api_call(http, base_url, prompt))
                direct.append(loop.run_until_complete(direct_call(direct_engine, prompt)))
        loop.run_until_complete(direct_engine.stop())
        loop.close()
    api_s = [s for s, _ in api]
    direct_s = [s for s, _ in direct]
    tokens_api, tokens_direct = sum(t for _, t in api), sum(t for _, t in direct)
    return {
        "requests": requests,
        "max_tokens": MAX_TOKENS,
        "same_tokens": tokens_api == tokens_direct,
        "api_mean_ms": 1000 * statistics.mean(api_s),
        "direct_mean_ms": 1000 * statistics.mean(direct_s),
        "api_median_ms": 1000 * statistics.median(api_s),
        "direct_median_ms": 1000 * statistics.median(direct_s),
        "latency_ratio_mean": statistics.mean(api_s) / statistics.mean(direct_s),
        "latency_ratio_median": statistics.median(api_s) / statistics.median(direct_s),
        "api_tokens_per_s": tokens_api / sum(api_s),
        "direct_tokens_per_s": tokens_direct / sum(direct_s),
        "throughput_ratio": (tokens_api / sum(api_s)) / (tokens_direct / sum(direct_s)),
    }


def bench_store(episodes: int, writers: int) -> dict:
    from tests.db import fresh_postgres_database

    messages = [{"role": "user", "content": "Remember that my sister Ada keeps bees in Lyon."}]
    with fresh_postgres_database() as url, tempfile.TemporaryDirectory() as spool_dir:
        upgrade(url)
        engine = make_engine(url)
        recorder = Recorder(make_sessionmaker(engine), Spool(Path(spool_dir)))
        recorder.start()
        records = [
            EpisodeRecord(
                id=uuid.uuid4(), namespace="bench", model="reverie", messages=messages, status="complete",
                response="Noted: Ada keeps bees in Lyon.", finish_reason="stop", prompt_tokens=20,
                completion_tokens=9, latency_ms=100.0, completed_at=utcnow(),
            )
            for _ in range(episodes)
        ]
        async def write_all() -> list[str]:
            # As in the API: request handlers are coroutines awaiting their episode's commit.
            gate = asyncio.Semaphore(writers)

            async def one(record):
                async with gate:
                    return await recorder.record(record)

            return await asyncio.gather(*(one(r) for r in records))

        started = time.perf_counter()
        places = asyncio.run(write_all())
        elapsed = time.perf_counter() - started
        recorder.close()
        with engine.connect() as connection:
            from sqlalchemy import text

            stored = connection.execute(text("SELECT count(*) FROM episodes")).scalar()
        engine.dispose()
    assert places.count("store") == episodes and stored == episodes
    return {"episodes": episodes, "concurrent_writers": writers, "seconds": elapsed, "episodes_per_s": episodes / elapsed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--episodes", type=int, default=20000)
    parser.add_argument("--writers", type=int, default=256, help="requests recording at once")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "bench-foundation.json")
    args = parser.parse_args()
    model_dir = prepare_model(Settings(data_dir=REPO / ".cache" / "bench-data"), None)
    results = {
        "model": str(model_dir.name),
        "cpu_count": os.cpu_count(),
        "latency": bench_latency(model_dir, args.requests),
        "store": bench_store(args.episodes, args.writers),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
