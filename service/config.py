"""One settings class for the whole service, read from `REVERIE_*` environment variables and `.env`."""

from __future__ import annotations

import os
import re
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

BUNDLED_MODEL = "bundled:SmolLM2-135M-Instruct"
# SmolLM2's own ChatML template with Hermes-style tools: the bundled model's template ignores `tools`.
BUNDLED_CHAT_TEMPLATE = Path(__file__).resolve().parent / "chat_templates" / "smollm2_tools.jinja"
MODEL_OWN_TEMPLATE = "model"
DEFAULT_NAMESPACE = "default"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
# A namespace names folders, adapters (`mem-<namespace>-v<N>`) and metric labels: a letter or digit,
# then up to 63 letters, digits, `_` or `-` (no dots, slashes or spaces). Checked in REVERIE_API_KEYS
# at start and in every request that names one.
NAMESPACE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
MIN_ADMIN_KEY_CHARS = 16


def check_namespace(name: str, where: str = "namespace") -> str:
    """`name` if it is a valid namespace, else ValueError saying what is allowed."""
    if not re.fullmatch(NAMESPACE_PATTERN, name):
        raise ValueError(
            f"{where} {name[:80]!r} is not a valid namespace: a letter or digit, then up to 63 letters, digits, '_' or '-'"
        )
    return name


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "reverie"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REVERIE_", env_file=".env", extra="ignore", hide_input_in_errors=True  # keys are secrets
    )

    data_dir: Path = Field(default_factory=_default_data_dir, description="Models, spool and adapters live here.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: a SQLite file in the data dir."
    )
    engine: Literal["local", "vllm"] = Field(default="local", description="Which engine generates tokens.")
    vllm_url: str = Field(
        default="http://127.0.0.1:8001", description="The private vLLM OpenAI server of REVERIE_ENGINE=vllm."
    )
    vllm_api_key: str | None = Field(default=None, description="vLLM's --api-key, if it was started with one.")
    vllm_sleep_during_training: bool = Field(
        default=False,
        description="A GPU too small to share: the worker puts vLLM to sleep while it trains (--enable-sleep-mode); "
        "default: vLLM keeps serving beside the night.",
    )
    night_generation: Literal["auto", "local", "vllm"] = Field(
        default="auto",
        description="What writes a night's text (the teacher's answers, the student's samples): `vllm` the vLLM of "
        "REVERIE_VLLM_URL, `local` transformers' generate in the worker; auto: vllm when the engine is vLLM and "
        "vLLM keeps serving through the night, else local.",
    )
    vllm_served_model_name: str | None = Field(
        default=None, description="vLLM's --served-model-name; default: the one base model vLLM serves."
    )
    model: str = Field(
        default=BUNDLED_MODEL,
        description="HF model folder or id; the default is the bundled SmolLM2-135M-Instruct, exported once.",
    )
    model_name: str = Field(default="reverie", description="The public model id clients ask for.")
    chat_template: str | None = Field(
        default=None,
        description="A Jinja chat template file used in place of the model's own (vLLM's --chat-template: give "
        "vLLM the same file); default: the shipped SmolLM2 template with tools for the bundled model, else the "
        "model's own; `model`: always the model's own.",
    )
    api_keys: str = Field(
        default="",
        description="`key:namespace,...`, read at start, beside the store's keys (`reverie keys`); with no key in "
        "either, any bearer token is namespace `default` (loopback only).",
    )
    admin_key: str | None = Field(default=None, description="Bearer key of the admin API and dashboard.")
    host: str = "127.0.0.1"
    port: int = 8000
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto", description="Log lines as JSON objects or plain text; auto: text on a terminal, else JSON."
    )
    metrics_public: bool = Field(default=False, description="Serve /metrics without the admin key.")

    max_model_len: int | None = Field(default=None, description="Context window; default: the model's own.")
    max_body_bytes: int = Field(default=1_048_576, description="Requests with a larger body get 413.")
    max_queue: int = Field(default=64, description="Requests waiting for the engine beyond this get 429.")
    default_max_tokens: int = Field(default=256, description="Completion length when the request names none.")
    max_completion_tokens: int = Field(default=4096, ge=1, description="Largest max_tokens a request may ask for.")
    max_choices: int = Field(default=4, ge=1, description="Largest n (choices generated for one request).")
    max_messages: int = Field(default=512, ge=1, description="Most messages in one request.")
    max_chars: int = Field(default=400_000, ge=1, description="Most characters of message content in one request.")
    rate_limit_per_minute: int = Field(
        default=0, ge=0,
        description="Requests per minute per API key, counted across every replica in the store (0: no limit).",
    )
    auth_failures_per_minute: int = Field(
        default=10, ge=0,
        description="Wrong API or admin keys (bearer or sign-in) per client address and minute before 429 (0: no limit).",
    )
    max_inflight_per_key: int = Field(
        default=0, ge=0, description="Requests in flight per API key, per replica (0: no limit)."
    )
    torch_threads: int | None = Field(default=None, description="torch intra-op threads of the local engine.")
    request_timeout_s: float = Field(
        default=600.0, gt=0,
        description="A request's episode still pending after this long died with its process: it is aborted, "
        "and its Idempotency-Key can be used again.",
    )
    spool_dir: Path | None = Field(default=None, description="Episodes wait here while the store is down.")
    spool_drain_interval_s: float = Field(default=1.0, description="How often the spool relay retries.")

    sleep_cron: str = Field(default="0 3 * * *", description="When the night job enqueues sleep runs (crontab).")
    sleep_timezone: str = Field(default="UTC", description="Time zone of REVERIE_SLEEP_CRON.")
    sleep_backlog_episodes: int = Field(
        default=0, ge=0, description="Also sleep when a namespace's backlog reaches this many episodes (0: off)."
    )
    sleep_config: str = Field(default="cpu-default", description="Trainer config: a shipped name or a YAML path.")
    sleep_max_episodes: int = Field(default=200, ge=1, description="Most episodes consolidated by one run.")
    max_lora_rank: int = Field(
        default=64, ge=1, description="Largest adapter rank served (vLLM's --max-lora-rank); checked before publishing."
    )
    sleep_max_per_conversation: int = Field(
        default=16, ge=0, description="Most episodes one conversation contributes to a night (0: no cap)."
    )
    sleep_include_flagged: bool = Field(
        default=False, description="Also consolidate episodes flagged as planted instructions (not advised)."
    )
    scheduler: bool = Field(default=True, description="Run the night-job scheduler in `reverie serve`.")
    embedded_worker: bool = Field(
        default=True, description="Run the sleep worker inside `reverie serve` (the embedded default)."
    )
    train_gpu_memory_gib: float | None = Field(
        default=None, ge=0,
        description="GPU memory a night needs free when it starts, checked before training (0: no check); "
        "default: estimated from the base model and the trainer config.",
    )
    worker_lease_s: float = Field(default=60.0, gt=0, description="A run whose worker is silent this long is retaken.")
    worker_metrics_port: int = Field(
        default=8002, ge=0, le=65535, description="`reverie worker` serves its own /metrics on this port (0: off)."
    )
    adapter_sync_interval_s: float = Field(default=2.0, gt=0, description="How often the API checks for new adapters.")
    adapter_store: str | None = Field(
        default=None,
        description="`s3://bucket/prefix`: published adapters are uploaded there (checksummed, immutable) and every "
        "host fetches them into its adapters folder, now a cache; unset: the adapters folder alone.",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="The S3 API of REVERIE_ADAPTER_STORE for MinIO and other S3-compatible stores; unset: AWS. "
        "Credentials: boto3's chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, a role).",
    )

    @field_validator("adapter_store", "s3_endpoint_url")
    @classmethod
    def _empty_is_unset(cls, value: str | None, info) -> str | None:
        value = (value or "").strip() or None
        if info.field_name == "adapter_store" and value is not None:
            bucket, _, _ = value.removeprefix("s3://").partition("/")
            if not value.startswith("s3://") or not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
                raise ValueError(f"REVERIE_ADAPTER_STORE {value!r} is not s3://bucket/prefix (a bucket name of 3-63 characters)")
        return value

    @field_validator("model_name")
    @classmethod
    def _model_name_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("REVERIE_MODEL_NAME must not be empty")
        return value

    @property
    def resolved_chat_template(self) -> Path | None:
        """The chat template file that replaces the model's own, or None to keep the model's."""
        if self.chat_template == MODEL_OWN_TEMPLATE:
            return None
        if self.chat_template is not None:
            return Path(self.chat_template).expanduser()
        return BUNDLED_CHAT_TEMPLATE if self.model == BUNDLED_MODEL else None

    @cached_property
    def key_namespaces(self) -> dict[str, str]:
        """Parse `API_KEYS` into {key: namespace}."""
        pairs: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in self.api_keys.split(","))):
            key, sep, namespace = item.partition(":")
            if not sep or not key.strip() or not namespace.strip():
                raise ValueError(f"REVERIE_API_KEYS entry {item!r} is not of the form key:namespace")
            pairs[key.strip()] = check_namespace(namespace.strip(), "REVERIE_API_KEYS names")
        return pairs

    @model_validator(mode="after")
    def _night_generation_needs_vllm_awake(self) -> Settings:
        if self.night_generation == "vllm" and self.vllm_sleep_during_training:
            raise ValueError("REVERIE_NIGHT_GENERATION=vllm needs vLLM awake through the night, and "
                             "REVERIE_VLLM_SLEEP_DURING_TRAINING puts it to sleep: set one or the other")
        return self

    @property
    def resolved_night_generation(self) -> Literal["local", "vllm"]:
        if self.night_generation != "auto":
            return self.night_generation
        return "vllm" if self.engine == "vllm" and not self.vllm_sleep_during_training else "local"

    @model_validator(mode="after")
    def _api_keys_parse(self) -> Settings:
        self.key_namespaces  # noqa: B018 - refuse a malformed REVERIE_API_KEYS at start, not at the first request
        return self

    def admin_key_problem(self) -> str | None:
        """Why the configured admin key must not open the admin API of a served instance, or None."""
        if self.admin_key is not None and len(self.admin_key) < MIN_ADMIN_KEY_CHARS:
            return (
                f"REVERIE_ADMIN_KEY has {len(self.admin_key)} characters; use at least {MIN_ADMIN_KEY_CHARS} "
                "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        return None

    @property
    def open_access(self) -> bool:
        """No REVERIE_API_KEYS: the embedded default (loopback only, namespace `default`) unless the store
        holds keys (`serving.auth.namespace_for`)."""
        return not self.key_namespaces

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'reverie.db'}"

    @property
    def resolved_spool_dir(self) -> Path:
        return self.spool_dir or self.data_dir / "spool"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def adapters_dir(self) -> Path:
        return self.data_dir / "adapters"
