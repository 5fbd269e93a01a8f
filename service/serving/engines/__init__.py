"""Engines behind one interface (`base.Engine`): `local` (transformers + peft) and `vllm`."""

from __future__ import annotations

from service.config import Settings
from service.serving.engines.base import Engine


def build_engine(settings: Settings) -> Engine:
    """The engine named by REVERIE_ENGINE (`reverie serve` has prepared the model already)."""
    chat_template = None
    if (template_file := settings.resolved_chat_template) is not None:
        # Checked here, not by Settings: containers that build no engine (worker, migrate) share the .env.
        if not template_file.is_file():
            raise ValueError(f"REVERIE_CHAT_TEMPLATE {str(template_file)!r} is not a file (a Jinja chat template, or 'model')")
        chat_template = template_file.read_text()
    if settings.engine == "local":
        from service.serving.engines.local import LocalEngine
        from service.modelprep import prepare_model

        return LocalEngine(
            prepare_model(settings),
            max_model_len=settings.max_model_len,
            max_queue=settings.max_queue,
            torch_threads=settings.torch_threads,
            chat_template=chat_template,
        )
    if settings.engine == "vllm":
        from service.serving.engines.vllm import VLLMEngine
        from service.modelprep import prepare_model

        # vLLM serves the model; this process only needs its tokenizer, from the same folder.
        return VLLMEngine(
            settings.vllm_url,
            tokenizer_path=prepare_model(settings),
            served_model_name=settings.vllm_served_model_name,
            api_key=settings.vllm_api_key,
            max_model_len=settings.max_model_len,
            max_queue=settings.max_queue,
            chat_template=chat_template,
        )
    raise NotImplementedError(f"engine {settings.engine!r} is not available yet")
