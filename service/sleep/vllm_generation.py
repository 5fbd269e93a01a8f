"""The night's text from the serving vLLM: `trainer.generation`'s teacher and student on vLLM's
completions endpoint, token ids in and token ids out.

    with VLLMGeneration(settings.vllm_url, run="1a2b3c4d", served=job.current_adapter,
                        base_model=job.base_model, folder=settings.adapters_dir / ".night" / "1a2b3c4d",
                        sync_steps=config.student_sync_steps) as generation:
        sleep(..., generation=generation)

`vllm_night_generation(settings)` makes one per run for the worker (`REVERIE_NIGHT_GENERATION`).

The teacher is the adapter the night starts from (the served stack, the folder the API serves), loaded
under a private name of its own so that a swap or a rollback during the night cannot change it; on a
first night, the base model. The student is the adapter being trained: when a sample is asked for and
vLLM's copy is `sync_steps` optimizer steps old (or there is none yet), it is saved as one PEFT folder
(`trainer.generation.save_student`, the stack `recipe.save_candidate` publishes) into `folder` and loaded
under a new private name, and the previous copy is unloaded and deleted. Private names are
`night-<run>-<role>` (`adapter_naming`): the engines never adopt, restore or route them, and the API never
lists them. Leaving the block unloads every private adapter and deletes `folder`, whether the night ended
or failed.

vLLM reads the folders by path, so it must see `folder` and the served adapter at the worker's paths: one
host, or the compose file's shared adapters volume (vLLM mounts it read-only at the worker's path).

Each prompt is its own request, sent from a pool of threads so vLLM batches them: sampled ones seeded
`seed + i` (the i-th prompt of a call), so a call's samples are reproducible and identical prompts (an
imitation group) still draw different continuations. Sampling is `chat.generate`'s: greedy at temperature
0, else plain sampling (top_k 0, top_p 1); generation stops at the tokenizer's end-of-turn token only
(`ignore_eos` with it as the one stop token), and the continuation keeps it, as `chat.generate` cuts.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from service.adapter_naming import night_adapter_name
from service.serving.engines.vllm import served_base

log = logging.getLogger(__name__)

NIGHT_FOLDER = ".night"  # under the adapters folder: the students' copies of the nights running


def vllm_night_generation(settings):
    """For the worker: each run's `VLLMGeneration` (a context manager) on the vLLM of `settings`, the
    students' copies under `<adapters>/.night/<run>`."""
    def start(job, config) -> VLLMGeneration:
        run = job.run_id.hex[:8]
        return VLLMGeneration(settings.vllm_url, run=run, served=job.current_adapter, base_model=job.base_model,
                              folder=settings.adapters_dir / NIGHT_FOLDER / run,
                              sync_steps=config.student_sync_steps, api_key=settings.vllm_api_key,
                              served_model_name=settings.vllm_served_model_name)

    return start


class NightGenerationError(RuntimeError):
    """vLLM refused or failed a request of the night's generation."""


class VLLMGeneration:
    """`trainer.generation.Generation` served by a vLLM OpenAI server with runtime LoRA loading."""

    def __init__(self, base_url: str, *, run: str, served: Path | None, base_model: Path, folder: Path,
                 sync_steps: int, api_key: str | None = None, served_model_name: str | None = None,
                 concurrency: int = 32, timeout_s: float = 600.0):
        """
        Args:
            base_url: the vLLM server (no `/v1`), as the engine's `REVERIE_VLLM_URL`.
            run: the night's short id, in its private adapter names.
            served: the adapter folder the night starts from (None: the base model).
            base_model: the served base model's folder (the student's `base_model_name_or_path`).
            folder: where the student's copies are written, a path vLLM reads too; deleted at the end.
            sync_steps: the most optimizer steps vLLM's copy of the student may lag behind.
            api_key: vLLM's `--api-key`, if any.
            served_model_name: vLLM's name of the base model; default: the one base model it lists.
            concurrency: requests in flight at once.
        """
        self.run, self.served, self.base_model, self.folder = run, served, base_model, Path(folder)
        self.sync_steps = sync_steps
        self._served_model_name = served_model_name
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=base_url.rstrip("/").removesuffix("/v1"), headers=headers,
                                    timeout=httpx.Timeout(30.0, read=timeout_s),
                                    limits=httpx.Limits(max_connections=concurrency))
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix=f"night-{run}")
        self._loaded: dict[str, Path] = {}  # private name -> its folder
        self.teacher_name = ""
        self.student_name: str | None = None
        self.steps = 0  # optimizer steps reported so far
        self._student_steps = 0  # the step vLLM's copy of the student was saved at
        self.student_copies = 0  # copies of the student loaded so far
        self.requests = 0  # completions asked of vLLM, for the run's metrics

    # --- lifecycle -------------------------------------------------------------------------------------

    def __enter__(self) -> VLLMGeneration:
        try:
            models = self._call("GET", "/v1/models")["data"]
            # a worker that died in this very run (now retaken) left its adapters loaded and its copies
            for leftover in [m["id"] for m in models if m["id"].startswith(night_adapter_name(self.run, ""))]:
                self._unload(leftover)
            shutil.rmtree(self.folder, ignore_errors=True)
            try:
                base = served_base(models, self._served_model_name)["id"]
            except ValueError as exc:
                raise NightGenerationError(f"vLLM at {self._client.base_url} {exc}") from None
            if self.served is None:
                self.teacher_name = base
            else:
                self.teacher_name = night_adapter_name(self.run, "teacher")
                self._load(self.teacher_name, self.served)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Unload every private adapter and delete the student's copies; never raises."""
        for name in list(self._loaded):
            self._unload(name)
        self._loaded.clear()
        shutil.rmtree(self.folder, ignore_errors=True)
        self._pool.shutdown(wait=True)
        self._client.close()

    # --- trainer.generation.Generation -----------------------------------------------------------------

    def teacher(self, model, tokenizer, groups, *, seeds, max_new_tokens, temperature=0.0, batch_size=16,
                shared_prefix=False):
        flat = [(prompt, None if seed is None else seed + i)
                for prompts, seed in zip(groups, seeds, strict=True) for i, prompt in enumerate(prompts)]
        out = iter(self._complete(self.teacher_name, tokenizer, flat, max_new_tokens, temperature))
        return [[next(out) for _ in prompts] for prompts in groups]

    def student(self, model, tokenizer, prompts, *, max_new_tokens, temperature, seed=None):
        self._sync_student(model)
        flat = [(prompt, None if seed is None else seed + i) for i, prompt in enumerate(prompts)]
        return self._complete(self.student_name, tokenizer, flat, max_new_tokens, temperature)

    def stepped(self, model) -> None:
        self.steps += 1

    def metrics(self) -> dict:
        """What the night asked of vLLM, for the run's metrics."""
        return {"by": "vllm", "requests": self.requests, "student_copies": self.student_copies}

    # --- the student's copy in vLLM ------------------------------------------------------------------

    def _sync_student(self, model) -> None:
        """Show vLLM the student as it is now, unless its copy there is fewer than `sync_steps` steps old."""
        if self.student_name is not None and self.steps - self._student_steps < self.sync_steps:
            return
        from trainer.generation import save_student

        self.student_copies += 1
        role = f"student-{self.student_copies}"
        folder = save_student(model, self.folder / role, base_model_name_or_path=str(self.base_model))
        name = night_adapter_name(self.run, role)
        self._load(name, folder)
        previous, self.student_name, self._student_steps = self.student_name, name, self.steps
        if previous is not None:  # vLLM keeps one copy of the student: the newest
            self._unload(previous)
            shutil.rmtree(self._loaded.pop(previous), ignore_errors=True)

    # --- vLLM -------------------------------------------------------------------------------------------

    def _complete(self, model_name: str, tokenizer, prompts: Sequence[tuple[Sequence[int], int | None]],
                  max_new_tokens: int, temperature: float) -> list[list[int]]:
        """Each (prompt ids, seed)'s continuation by `model_name`, cut after the end-of-turn token."""
        from trainer.chat import end_of_turn
        from trainer.generation import cut_after_end_of_turn

        eot = end_of_turn(tokenizer)

        def one(job: tuple[Sequence[int], int | None]) -> list[int]:
            prompt, seed = job
            body = {"model": model_name, "prompt": list(prompt), "max_tokens": max_new_tokens,
                    "temperature": temperature, "top_p": 1.0, "top_k": 0, "ignore_eos": True,
                    "stop_token_ids": [eot], "return_token_ids": True}
            if temperature > 0 and seed is not None:
                body["seed"] = seed
            choice = self._call("POST", "/v1/completions", json=body)["choices"][0]
            return cut_after_end_of_turn(choice["token_ids"], eot, choice.get("finish_reason") == "stop")

        self.requests += len(prompts)
        return list(self._pool.map(one, prompts))

    def _load(self, name: str, folder: Path) -> None:
        self._call("POST", "/v1/load_lora_adapter", json={"lora_name": name, "lora_path": str(folder)})
        self._loaded[name] = folder

    def _unload(self, name: str) -> None:
        try:
            self._call("POST", "/v1/unload_lora_adapter", json={"lora_name": name})
        except NightGenerationError as exc:  # gone already (vLLM restarted), or vLLM is down
            log.warning("could not unload the night's adapter %s from vLLM: %s", name, exc)

    def _call(self, method: str, path: str, **kwargs):
        """One request to vLLM: its JSON (or text) answer, or `NightGenerationError` saying what failed."""
        what = f"{method} {path}"
        try:
            resp = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise NightGenerationError(f"{what} to vLLM at {self._client.base_url} failed: {exc!r}") from exc
        if resp.status_code != 200:
            raise NightGenerationError(f"{what} to vLLM answered {resp.status_code}: {resp.text[:500]}")
        try:
            return resp.json()
        except ValueError:
            return resp.text  # the LoRA endpoints answer in plain text
