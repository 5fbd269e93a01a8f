"""Episode records for tests: a pending one, and the same one completed."""

from __future__ import annotations

import uuid

from service.store.episodes import EpisodeRecord
from service.store.models import EpisodeStatus, utcnow


def make_record(namespace="default", **overrides) -> EpisodeRecord:
    values = dict(id=uuid.uuid4(), namespace=namespace, model="reverie", messages=[{"role": "user", "content": "hi"}])
    values.update(overrides)
    return EpisodeRecord(**values)


def completed(record: EpisodeRecord, response="hello", tokens=(3, 2)) -> EpisodeRecord:
    record.status, record.response, record.finish_reason = EpisodeStatus.COMPLETE, response, "stop"
    record.prompt_tokens, record.completion_tokens = tokens
    record.completed_at = utcnow()
    return record
