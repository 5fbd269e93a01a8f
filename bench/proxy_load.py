"""The proxy under load: streams through Reverie (vLLM engine) against the same requests sent to vLLM itself.

    .venv/bin/python bench/proxy_load.py [--concurrency 1 8 32] [--rounds 8] [--max-tokens 64] \
        [--out runs/proxy-load]

One vLLM (the CPU build from `.venv-vllm`, SmolLM2-135M-Instruct, the flags of docs/vllm.md) serves both
paths. Reverie runs as `reverie serve`, a process of its own, with `REVERIE_ENGINE=vllm` pointing at that
vLLM, a scratch Postgres database as its store (recording on, as always) and an API key of the store.
For each concurrency C, a round starts C streaming chat completions at once with the official `openai`
async client and waits for all of them; rounds alternate between the paths (direct first on even rounds,
Reverie first on odd ones) after one warm-up round of each, so drift in the machine's speed hits both
alike. Both paths get the same prompts, greedy, the same `max_tokens`. Reverie does not pass vLLM's
`ignore_eos` on (it is not OpenAI's), so the prompts ask for long texts that run to `max_tokens`; the
report says whether both paths generated the same tokens.

Measured per path: output tokens/s (all tokens of the rounds over their wall time), time to first token
(the first chunk with text; p50 and mean), inter-token latency (the gaps between text chunks, pooled;
p50), and the CPU seconds of the Reverie process and of vLLM per request. The ratios are Reverie / direct.
Afterwards every request sent through Reverie must be in the store as a complete episode with the tokens
its client was told. `OUT/proxy-load.json` and `OUT/proxy-load.md` hold the results (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import openai  # noqa: E402
import psutil  # noqa: E402

PROMPTS = [  # long answers: greedy replies run to max_tokens on both paths
    "Write a long story about a lighthouse keeper and a storm.",
    "Write a long essay about the history of the Roman Empire.",
    "Describe a walk through a busy market in Marrakesh.",
    "Write a detailed history of the printing press.",
    "Give a step-by-step recipe for bread, with every detail.",
    "Write a letter to a friend about your summer holidays.",
    "Explain photosynthesis to a ten-year-old, at length.",
    "Describe the life cycle of a star from birth to death.",
]
NAMESPACE = "bench"
PATHS = ("direct", "reverie")


@dataclass
class Stream:
    """One streamed completion as its client saw it; times in seconds from the round's start."""

    sent: float
    chunk_times: list[float] = field(default_factory=list)  # arrivals of the chunks that carry text
    completion_tokens: int = 0
    finish_reason: str | None = None
    text: str = ""


@dataclass
class Round:
    path: str
    concurrency: int
    wall_s: float
    streams: list[Stream]
    proxy_cpu_s: float  # the Reverie process's CPU seconds during the round
    vllm_cpu_s: float  # vLLM's (its server and engine-core processes)


# --- the summary (pure; tests/bench/test_proxy_load.py) ------------------------------------------------


def summarise(rounds: list[Round]) -> dict:
    """One path's rounds at one concurrency: throughput, TTFT, inter-token latency, CPU per request."""
    streams = [s for r in rounds for s in r.streams]
    ttfts = [s.chunk_times[0] - s.sent for s in streams if s.chunk_times]
    gaps = [b - a for s in streams for a, b in zip(s.chunk_times, s.chunk_times[1:])]
    tokens = sum(s.completion_tokens for s in streams)
    return {
        "requests": len(streams),
        "tokens": tokens,
        "tokens_per_s": tokens / sum(r.wall_s for r in rounds),
        "ttft_p50_ms": 1000 * statistics.median(ttfts),
        "ttft_mean_ms": 1000 * statistics.fmean(ttfts),
        "itl_p50_ms": 1000 * statistics.median(gaps) if gaps else None,
        "itl_mean_ms": 1000 * statistics.fmean(gaps) if gaps else None,
        "ran_to_max_tokens": sum(s.finish_reason == "length" for s in streams),
        "proxy_cpu_ms_per_request": 1000 * sum(r.proxy_cpu_s for r in rounds) / len(streams),
        "vllm_cpu_ms_per_request": 1000 * sum(r.vllm_cpu_s for r in rounds) / len(streams),
    }


def ratios(direct: dict, reverie: dict) -> dict:
    """Reverie / direct for each latency and throughput figure (above 1: Reverie higher)."""
    keys = ("tokens_per_s", "ttft_p50_ms", "ttft_mean_ms", "itl_p50_ms", "itl_mean_ms")
    return {key: reverie[key] / direct[key] for key in keys if direct.get(key) and reverie.get(key)}


def paired_throughput_ratios(rounds: list[Round]) -> list[float]:
    """Reverie / direct tokens/s of each pair of rounds run one after the other: the spread of the ratio."""
    by_path = {path: [r for r in rounds if r.path == path] for path in PATHS}

    def rate(r: Round) -> float:
        return sum(s.completion_tokens for s in r.streams) / r.wall_s

    return [rate(rev) / rate(direct) for direct, rev in zip(by_path["direct"], by_path["reverie"])]


def markdown(results: dict) -> str:
    lines = [
        "| streams | throughput ratio | TTFT p50 ratio | TTFT mean ratio | ITL p50 ratio "
        "| tok/s direct / Reverie | TTFT p50 ms direct / Reverie | ITL p50 ms direct / Reverie "
        "| throughput ratio of each pair: median (min-max) | Reverie CPU ms/request, less its idle work |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c, point in results["concurrency"].items():
        d, r, q = point["direct"], point["reverie"], point["ratios"]
        pairs = point["paired_throughput_ratios"]
        lines.append(
            f"| {c} | **{q['tokens_per_s']:.3f}** | **{q['ttft_p50_ms']:.3f}** | {q['ttft_mean_ms']:.3f} "
            f"| {q.get('itl_p50_ms', float('nan')):.3f} | {d['tokens_per_s']:.1f} / {r['tokens_per_s']:.1f} "
            f"| {d['ttft_p50_ms']:.0f} / {r['ttft_p50_ms']:.0f} "
            f"| {d['itl_p50_ms']:.1f} / {r['itl_p50_ms']:.1f} "
            f"| {statistics.median(pairs):.3f} ({min(pairs):.3f}-{max(pairs):.3f}) "
            # less what Reverie spends relaying nothing (health checks, adapter sync): its direct rounds
            f"| {r['proxy_cpu_ms_per_request'] - d['proxy_cpu_ms_per_request']:.1f} |"
        )
    return "\n".join(lines) + "\n"


# --- the load -----------------------------------------------------------------------------------------


async def one_stream(
    client: openai.AsyncOpenAI, model: str, prompt: str, max_tokens: int, t0: float
) -> Stream:
    stream = Stream(sent=time.perf_counter() - t0)
    chunks = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0,
        stream=True, stream_options={"include_usage": True},
    )  # fmt: skip
    async for chunk in chunks:
        if chunk.usage is not None:
            stream.completion_tokens = chunk.usage.completion_tokens
        for choice in chunk.choices:
            if choice.delta.content:
                stream.chunk_times.append(time.perf_counter() - t0)
                stream.text += choice.delta.content
            stream.finish_reason = choice.finish_reason or stream.finish_reason
    return stream


class Processes:
    """CPU seconds used so far by the Reverie process and by vLLM with its children."""

    def __init__(self, reverie_pid: int, vllm_pid: int):
        self.reverie = psutil.Process(reverie_pid)
        self.vllm = psutil.Process(vllm_pid)

    @staticmethod
    def _cpu(process: psutil.Process, with_children: bool) -> float:
        family = [process, *process.children(recursive=True)] if with_children else [process]
        total = 0.0
        for member in family:
            try:
                times = member.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def snapshot(self) -> tuple[float, float]:
        return self._cpu(self.reverie, with_children=False), self._cpu(self.vllm, with_children=True)


async def one_round(
    path: str, client: openai.AsyncOpenAI, model: str, concurrency: int, max_tokens: int, processes: Processes
) -> Round:
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(concurrency)]
    cpu_before = processes.snapshot()
    t0 = time.perf_counter()
    streams = await asyncio.gather(*(one_stream(client, model, p, max_tokens, t0) for p in prompts))
    wall_s = time.perf_counter() - t0
    proxy_cpu, vllm_cpu = (after - before for after, before in zip(processes.snapshot(), cpu_before))
    return Round(path, concurrency, wall_s, list(streams), proxy_cpu, vllm_cpu)


async def measure(clients: dict, concurrency: list[int], rounds: int, max_tokens: int, processes: Processes):
    """Every round, warm-ups included (they are left out of the summary but recorded as episodes)."""
    measured: dict[int, list[Round]] = {}
    sent_through_reverie: list[Stream] = []
    for c in concurrency:
        for path in PATHS:  # warm-up: connections, vLLM's prefix cache, the proxy's first requests
            warm = await one_round(path, *clients[path], c, max_tokens, processes)
            sent_through_reverie += warm.streams if path == "reverie" else []
        measured[c] = []
        for i in range(rounds):
            for path in PATHS if i % 2 == 0 else PATHS[::-1]:
                r = await one_round(path, *clients[path], c, max_tokens, processes)
                measured[c].append(r)
                sent_through_reverie += r.streams if path == "reverie" else []
                tokens = sum(s.completion_tokens for s in r.streams)
                ttft = statistics.median(s.chunk_times[0] - s.sent for s in r.streams if s.chunk_times)
                print(
                    f"c={c} round {i + 1}/{rounds} {path:7}: {tokens} tokens in {r.wall_s:.2f} s = "
                    f"{tokens / r.wall_s:.1f} tok/s, TTFT p50 {1000 * ttft:.0f} ms, "
                    f"Reverie CPU {r.proxy_cpu_s:.2f} s, vLLM CPU {r.vllm_cpu_s:.2f} s",
                    flush=True,
                )
    return measured, sent_through_reverie


def results_of(measured: dict[int, list[Round]]) -> dict:
    out = {}
    for c, rounds in measured.items():
        point = {path: summarise([r for r in rounds if r.path == path]) for path in PATHS}
        point["ratios"] = ratios(point["direct"], point["reverie"])
        point["paired_throughput_ratios"] = paired_throughput_ratios(rounds)
        texts = {path: [s.text for r in rounds if r.path == path for s in r.streams] for path in PATHS}
        point["same_texts"] = sum(a == b for a, b in zip(texts["direct"], texts["reverie"]))
        out[str(c)] = point
    return out


# --- the servers and the store ------------------------------------------------------------------------


def store_check(url: str, sent: list[Stream]) -> dict:
    """Every request sent through Reverie is a complete episode with the tokens its client was told."""
    import sqlalchemy

    from service.store.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sqlalchemy.text("SELECT status, count(*), coalesce(sum(completion_tokens), 0) FROM episodes "
                                "WHERE namespace = :ns GROUP BY status"),
                {"ns": NAMESPACE},
            ).all()  # fmt: skip
    finally:
        engine.dispose()
    by_status = {status: {"episodes": count, "completion_tokens": tokens} for status, count, tokens in rows}
    complete = by_status.get("complete", {"episodes": 0, "completion_tokens": 0})
    told = sum(s.completion_tokens for s in sent)
    return {
        "sent": len(sent),
        "by_status": by_status,
        "told_completion_tokens": told,
        "all_recorded": complete["episodes"] == len(sent) == sum(v["episodes"] for v in by_status.values())
        and complete["completion_tokens"] == told,
    }


@contextmanager
def served_reverie(upstream_url: str, served_name: str, model: Path, label: str):
    """`reverie serve` with its vLLM engine in front of `upstream_url` (a scratch Postgres store, recording
    on, an API key of the store for namespace NAMESPACE, as `reverie keys create` makes; no scheduler and
    no embedded worker: the API alone). Yields (its process, its URL, the key, the store's URL)."""
    from service.config import BUNDLED_CHAT_TEMPLATE
    from service.store import api_keys as key_store
    from service.store.db import make_engine, make_sessionmaker, upgrade
    from tests.db import fresh_postgres_database
    from tests.servers import free_port, server_process

    with tempfile.TemporaryDirectory() as tmp, fresh_postgres_database() as db_url:
        upgrade(db_url)
        engine = make_engine(db_url)
        with make_sessionmaker(engine)() as session:
            _, api_key = key_store.create_key(session=session, namespace=NAMESPACE, label=label)
        engine.dispose()
        env = {
            "REVERIE_ENGINE": "vllm", "REVERIE_MODEL": str(model), "REVERIE_DATABASE_URL": db_url,
            "REVERIE_CHAT_TEMPLATE": str(BUNDLED_CHAT_TEMPLATE), "REVERIE_VLLM_URL": upstream_url,
            "REVERIE_VLLM_SERVED_MODEL_NAME": served_name, "REVERIE_DATA_DIR": f"{tmp}/data",
            "REVERIE_ADMIN_KEY": "proxy-load-admin-key-0123", "REVERIE_SCHEDULER": "false",
            "REVERIE_EMBEDDED_WORKER": "false",
        }  # fmt: skip
        port = free_port()
        with server_process(env, port, Path(tmp) / "reverie.log") as process:
            yield process, f"http://127.0.0.1:{port}", api_key, db_url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32], help="streams at once")
    parser.add_argument("--rounds", type=int, default=8, help="measured rounds per path and concurrency")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "proxy-load")
    parser.add_argument("--model", type=Path, default=REPO / ".cache" / "models" / "SmolLM2-135M-Instruct")
    args = parser.parse_args()
    # A background job ignores SIGINT: SIGTERM too stops vLLM, Reverie and the scratch database on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from tests.vllm_server import SERVED_NAME, TOOL_ARGS, vllm_server

    args.out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        vllm_log = Path(tmp) / "vllm.log"
        with vllm_server(args.model, vllm_log, extra_args=TOOL_ARGS) as vllm, served_reverie(
            vllm.url, SERVED_NAME, args.model, "proxy-load bench"
        ) as (reverie, url, api_key, db_url):
            print(f"vLLM at {vllm.url}, Reverie at {url} (Postgres store)", flush=True)
            processes = Processes(reverie.pid, vllm.process.pid)
            measured, sent = asyncio.run(run_load(vllm.url, url, api_key, args, processes))
            # read the store once Reverie has stopped, as before 87295bf: what shutdown flushes counts
            reverie.terminate()
            reverie.wait(timeout=20)
            records = store_check(db_url, sent)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    results = {
        "commit": commit.stdout.strip(), "date": time.strftime("%Y-%m-%d"), "model": args.model.name,
        "cpu_count": os.cpu_count(), "load_average_before_after": [load_before[0], os.getloadavg()[0]],
        "max_tokens": args.max_tokens, "rounds": args.rounds, "concurrency": results_of(measured),
        "records": records,
    }  # fmt: skip
    (args.out / "proxy-load.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.out / "proxy-load.md").write_text(table)
    print(table)
    print(f"records: {json.dumps(records)}")
    return 0 if records["all_recorded"] else 1


async def run_load(vllm_url: str, reverie_url: str, api_key: str, args, processes: Processes):
    def client(base_url: str, key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0, timeout=600)

    from tests.vllm_server import SERVED_NAME

    clients = {
        "direct": (client(vllm_url, "unused"), SERVED_NAME),
        "reverie": (client(reverie_url, api_key), "reverie"),
    }
    try:
        return await measure(clients, args.concurrency, args.rounds, args.max_tokens, processes)
    finally:
        for c, _ in clients.values():
            await c.close()


if __name__ == "__main__":
    sys.exit(main())
