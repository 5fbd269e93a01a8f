"""What Reverie adds to a request's time to first token, against an upstream that answers on time.

    .venv/bin/python bench/proxy_overhead.py [--requests 200] [--first-token-ms 20] [--out runs/proxy-overhead]

`bench/proxy_load.py` measures Reverie against vLLM itself, where vLLM's own time to first token (about
100 ms on vLLM-CPU) and its noise hide a few milliseconds. Here the upstream is a small OpenAI-shaped
server (this file with `--serve-upstream PORT`) that streams its first token a fixed time after each
request (`--first-token-ms`), with no noise of its own, so the difference between the two paths is
Reverie's own cost: the extra HTTP hop, reading and validating the body, the API-key lookup on the store,
the prompt's token count and relaying (the pending row's commit runs beside the upstream's wait; at 0 ms
it is in the path too). That fixed cost is what a faster engine (a GPU's TTFT is tens of milliseconds)
would weigh against.

Reverie runs as `reverie serve` (vLLM engine pointed at that upstream, a scratch Postgres store,
recording on, an API key of the store), as in the load bench. Requests go one at a time, alternating
between the paths (direct first on even pairs), after a warm-up; the official `openai` async client
times the first chunk with text. `OUT/proxy-overhead.json` holds the times and their summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SERVED_NAME = "instant"
PROMPT = "Write a long story about a lighthouse keeper and a storm."


def summary(direct_s: list[float], reverie_s: list[float]) -> dict:
    """Times to first token of the two paths (seconds, in pairs) as p50 / p90 in ms, and Reverie's added
    cost: the difference of the medians and the median of the paired differences."""

    def ms(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return 1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {
        "requests_per_path": len(direct_s),
        "direct_ttft_p50_ms": ms(direct_s, 0.5),
        "direct_ttft_p90_ms": ms(direct_s, 0.9),
        "reverie_ttft_p50_ms": ms(reverie_s, 0.5),
        "reverie_ttft_p90_ms": ms(reverie_s, 0.9),
        "added_p50_ms": ms(reverie_s, 0.5) - ms(direct_s, 0.5),
        "added_paired_median_ms": 1000 * statistics.median(r - d for d, r in zip(direct_s, reverie_s)),
    }


# --- the instant upstream ---------------------------------------------------------------------------


def serve_upstream(port: int, first_s: float, tokens: int = 8, gap_s: float = 0.004) -> None:
    """vLLM's OpenAI surface as far as Reverie's vLLM engine uses it (`/health`, `/v1/models`, and a
    streamed chat completion whose first token leaves `first_s` after the request, then `tokens` words
    `gap_s` apart), and
    `/readyz` for `tests.servers.wait_ready`."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    def event(choices: list | None, usage: dict | None = None) -> str:
        body = {"id": "chatcmpl-instant", "object": "chat.completion.chunk", "created": 0, "model": SERVED_NAME,
                "choices": choices}  # fmt: skip
        if usage:
            body["usage"] = usage
        return f"data: {json.dumps(body)}\n\n"

    def choice(delta: dict, finish: str | None = None) -> list:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    async def chat(request):
        await request.body()

        async def stream():
            yield event(choice({"role": "assistant", "content": ""}))
            await asyncio.sleep(first_s)
            for i in range(tokens):
                yield event(choice({"content": f" word{i}"}))
                await asyncio.sleep(gap_s)
            yield event(choice({}, "length"))
            yield event(None, {"prompt_tokens": 16, "completion_tokens": tokens, "total_tokens": 16 + tokens})
            yield "data: [DONE]\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def models(_request):
        model = {"id": SERVED_NAME, "object": "model", "parent": None, "root": SERVED_NAME, "max_model_len": 2048}
        return JSONResponse({"object": "list", "data": [model]})

    async def ok(_request):
        return Response()

    routes = [Route("/health", ok), Route("/readyz", ok), Route("/v1/models", models),
              Route("/v1/chat/completions", chat, methods=["POST"])]  # fmt: skip
    uvicorn.run(Starlette(routes=routes), host="127.0.0.1", port=port, log_level="warning")


# --- the measurement ------------------------------------------------------------------------------------


async def first_token_s(client, model: str) -> float:
    sent = time.perf_counter()
    stream = await client.chat.completions.create(
        model=model, stream=True, max_tokens=8, temperature=0, messages=[{"role": "user", "content": PROMPT}]
    )
    first = None
    async for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - sent
    if first is None:
        raise RuntimeError(f"no text came back through {model}")
    return first


async def measure(upstream_url: str, reverie_url: str, api_key: str, requests: int) -> tuple[list, list]:
    import openai

    paths = [
        (openai.AsyncOpenAI(base_url=f"{upstream_url}/v1", api_key="unused", max_retries=0), SERVED_NAME),
        (openai.AsyncOpenAI(base_url=f"{reverie_url}/v1", api_key=api_key, max_retries=0), "reverie"),
    ]
    for _ in range(20):  # warm-up: connections, the first requests' imports and caches
        for client, model in paths:
            await first_token_s(client, model)
    times: tuple[list, list] = ([], [])
    for i in range(requests):
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for which in order:
            times[which].append(await first_token_s(*paths[which]))
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per path")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "proxy-overhead")
    parser.add_argument("--model", type=Path, default=REPO / ".cache" / "models" / "SmolLM2-135M-Instruct",
                        help="its tokenizer counts prompts in Reverie")  # fmt: skip
    parser.add_argument("--first-token-ms", type=float, default=20.0,
                        help="the upstream's time to first token: 20 ms, a GPU's for a short prompt; at 0, "
                             "Reverie's first token also waits for its pending row's commit, which a real "
                             "engine's prefill hides")
    parser.add_argument("--serve-upstream", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream, args.first_token_ms / 1000)
        return 0

    from bench.proxy_load import served_reverie
    from tests.servers import free_port, wait_ready

    args.out.mkdir(parents=True, exist_ok=True)
    upstream_port = free_port()
    upstream_url = f"http://127.0.0.1:{upstream_port}"
    upstream = subprocess.Popen([sys.executable, __file__, "--serve-upstream", str(upstream_port),
                                 "--first-token-ms", str(args.first_token_ms)], cwd=REPO)
    try:
        wait_ready(upstream_url, process=upstream)
        with served_reverie(upstream_url, SERVED_NAME, args.model, "proxy-overhead bench") as (_, url, api_key, _):
            direct, reverie = asyncio.run(measure(upstream_url, url, api_key, args.requests))
    finally:
        upstream.terminate()
        upstream.wait(timeout=20)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    results = {
        "commit": commit.stdout.strip(), "date": time.strftime("%Y-%m-%d"), "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg()[0], "first_token_ms": args.first_token_ms, "summary": summary(direct, reverie),
        "direct_ttft_s": direct, "reverie_ttft_s": reverie,
    }  # fmt: skip
    (args.out / "proxy-overhead.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
