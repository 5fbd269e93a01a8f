"""Constrained against free decoding on the local engine: cost per token, and the share of schema-valid replies.

    .venv/bin/python bench/structured_output.py [--model .cache/models/SmolLM2-135M-Instruct] [--threads 1]

The same prompts are decoded by `LocalEngine` with no response_format and with a json_schema one
(sampled, seeded, interleaved so that load on the machine hits both alike); a warm-up request first pays
the one-time costs (llguidance's tokenizer view, the schema's compilation). Per mode it prints completion
tokens, milliseconds per token (wall time of the generation over its completion tokens) and their ratio,
the cost of one mask alone, and how many constrained replies ended by the grammar ("stop") and validated
against the schema (must be all of them), against those `max_tokens` cut ("length").
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Annotated, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

REPO = Path(__file__).resolve().parent.parent


class Pet(BaseModel):
    model_config = ConfigDict(extra="forbid")  # additionalProperties: false, as strict schemas have it

    name: Annotated[str, Field(max_length=40)]
    species: Literal["cat", "dog", "bird", "fish"]
    age: Annotated[int, Field(ge=0, le=30)]
    traits: Annotated[list[Annotated[str, Field(max_length=20)]], Field(max_length=3)]
    vaccinated: bool


PROMPTS = [
    "Invent a pet and describe it as JSON.",
    "Describe a lazy old cat as a JSON object.",
    "Give me a JSON record for a parrot that talks.",
    "My dog Rex is 4 and loves balls. Write his record as JSON.",
    "Create a pet profile in JSON for a goldfish.",
    "Describe an energetic puppy in JSON.",
]
FORMAT = {"type": "json_schema", "json_schema": {"name": "Pet", "schema": Pet.model_json_schema(), "strict": True}}


async def generate(engine, prompt: str, max_tokens: int, seed: int, response_format) -> tuple[str, str, int, float]:
    from service.serving.engines.base import GenerationRequest, SamplingParams

    params = SamplingParams(max_tokens=max_tokens, temperature=0.7, seed=seed, response_format=response_format)
    started = time.perf_counter()
    chunks = [c async for c in engine.generate(GenerationRequest([{"role": "user", "content": prompt}], params))]
    seconds = time.perf_counter() - started
    return "".join(c.text for c in chunks), chunks[-1].finish_reason, chunks[-1].usage.completion_tokens, seconds


def mask_ms(engine, steps: int = 200) -> float:
    """One mask over the model's vocabulary, at the start of the schema's grammar, in milliseconds."""
    grammars = engine._grammars
    constraint = grammars.constraints(grammars.compile(FORMAT), 1)[0]
    logits = torch.randn(engine.vocab_size)
    started = time.perf_counter()
    for _ in range(steps):
        constraint.mask(logits)
    return 1000 * (time.perf_counter() - started) / steps


async def main(args: argparse.Namespace) -> None:
    from service.serving.engines.local import LocalEngine

    engine = LocalEngine(args.model, torch_threads=args.threads)
    await engine.start()
    await generate(engine, PROMPTS[0], 4, 0, FORMAT)  # warm-up: tokenizer view, schema compiled
    totals = {"free": [0, 0.0], "constrained": [0, 0.0]}
    outcomes = {"stop, valid": 0, "stop, invalid": 0, "length": 0}
    for seed in range(args.rounds):
        for prompt in PROMPTS:
            for mode, response_format in (("free", None), ("constrained", FORMAT)):
                text, finish, tokens, seconds = await generate(engine, prompt, args.max_tokens, seed, response_format)
                totals[mode][0] += tokens
                totals[mode][1] += seconds
                if mode == "constrained":
                    outcomes[_outcome(text, finish)] += 1
    mask = mask_ms(engine)
    await engine.stop()

    per_token = {mode: 1000 * seconds / tokens for mode, (tokens, seconds) in totals.items()}
    print(f"model {Path(args.model).name}, {args.threads} torch thread(s), vocabulary {engine.vocab_size}")
    for mode, (tokens, seconds) in totals.items():
        print(f"{mode:12s} {tokens:5d} tokens in {seconds:6.1f} s: {per_token[mode]:6.2f} ms/token")
    print(f"ratio constrained/free per token: {per_token['constrained'] / per_token['free']:.3f}")
    print(f"one mask alone: {mask:.3f} ms")
    replies = sum(outcomes.values())
    valid = outcomes["stop, valid"]
    print(f"constrained replies: {replies}; ended by the grammar and schema-valid: {valid}, "
          f"ended by the grammar but invalid: {outcomes['stop, invalid']}, cut by max_tokens: {outcomes['length']}")


def _outcome(text: str, finish: str) -> str:
    if finish == "length":
        return "length"
    try:
        Pet.model_validate_json(text)
        return "stop, valid"
    except ValidationError:
        return "stop, invalid"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / ".cache" / "models" / "SmolLM2-135M-Instruct"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1, help="seeds per prompt")
    parser.add_argument("--max-tokens", type=int, default=128)
    asyncio.run(main(parser.parse_args()))
