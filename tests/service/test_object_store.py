"""Adapters across hosts through an S3-compatible object store, against a real S3 API server (moto's
server mode on loopback): the worker uploads with checksums, a replica with an empty cache fetches,
verifies and serves, a tampered object is refused, objects are immutable, and without
REVERIE_ADAPTER_STORE nothing changes."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid

import pytest

from service.config import Settings
from service.errors import AdapterError, AdapterStoreError, ConflictError
from service.object_store import MANIFEST, AdapterObjectStore, adapter_object_store, local_adapter_folder
from service.sleep.adapter_folders import publish_folder, remove_retired_folders

PREFIX = "prod"


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 API server on a free loopback port, for the whole session (it starts in about a second)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint, monkeypatch):
    """A fresh bucket; credentials through boto3's standard chain (the environment), as in production."""
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "reverie-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "reverie-test-secret")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    name = f"adapters-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3(s3_endpoint, bucket):
    """A plain client for looking at (and tampering with) the bucket behind Reverie's back."""
    import boto3

    return boto3.client("s3", endpoint_url=s3_endpoint)


def host_store(tmp_path, host: str, bucket: str, endpoint: str) -> AdapterObjectStore:
    """The object store as one host's settings make it: its own data dir, so its own adapters cache."""
    settings = Settings(data_dir=tmp_path / host, adapter_store=f"s3://{bucket}/{PREFIX}", s3_endpoint_url=endpoint)
    store = adapter_object_store(settings)
    assert store is not None and store.cache_dir == settings.adapters_dir
    return store


def adapter_folder(root, name="run1-e1", weights: bytes | None = None):
    """A published folder as the worker leaves one (contents need not be a real LoRA here)."""
    source = root / "candidate"
    source.mkdir(parents=True)
    (source / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4}')
    (source / "adapter_model.safetensors").write_bytes(weights if weights is not None else os.urandom(8192))
    (source / "reverie_writer").mkdir()
    (source / "reverie_writer" / "adapter_config.json").write_text("{}")
    return publish_folder(source, root / "adapters" / "default" / name)


def keys_under(s3, bucket, prefix=PREFIX):
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []))


def test_upload_puts_every_file_and_a_sha256_manifest(tmp_path, bucket, s3, s3_endpoint):
    folder = adapter_folder(tmp_path / "worker")
    address = host_store(tmp_path, "worker", bucket, s3_endpoint).upload(folder, "default")

    assert address == f"s3://{bucket}/{PREFIX}/default/run1-e1"
    key = f"{PREFIX}/default/run1-e1"
    assert keys_under(s3, bucket) == [
        f"{key}/adapter_config.json", f"{key}/adapter_model.safetensors", f"{key}/{MANIFEST}",
        f"{key}/reverie_writer/adapter_config.json",
    ]
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"{key}/{MANIFEST}")["Body"].read())
    for name in ("adapter_config.json", "adapter_model.safetensors", "reverie_writer/adapter_config.json"):
        local = (folder / name).read_bytes()
        assert manifest["files"][name] == {"sha256": hashlib.sha256(local).hexdigest(), "size": len(local)}
        assert s3.get_object(Bucket=bucket, Key=f"{key}/{name}")["Body"].read() == local


def test_a_replica_with_an_empty_cache_fetches_a_verified_copy(tmp_path, bucket, s3_endpoint):
    folder = adapter_folder(tmp_path / "worker")
    address = host_store(tmp_path, "worker", bucket, s3_endpoint).upload(folder, "default")
    replica = host_store(tmp_path, "replica", bucket, s3_endpoint)
    assert not replica.cache_dir.exists()

    fetched = local_adapter_folder(address, replica)

    assert fetched == replica.cache_dir / "default" / "run1-e1"
    assert sorted(p.relative_to(fetched).as_posix() for p in fetched.rglob("*") if p.is_file()) == [
        "adapter_config.json", "adapter_model.safetensors", "reverie_writer/adapter_config.json"
    ]
    for path in folder.rglob("*"):
        if path.is_file():
            assert (fetched / path.relative_to(folder)).read_bytes() == path.read_bytes()
    assert [p.name for p in fetched.parent.iterdir()] == ["run1-e1"]  # no temporary folder left
    assert replica.fetch(address) == fetched  # cached: fetched once


def test_a_tampered_object_is_refused_and_nothing_is_cached(tmp_path, bucket, s3, s3_endpoint):
    folder = adapter_folder(tmp_path / "worker")
    address = host_store(tmp_path, "worker", bucket, s3_endpoint).upload(folder, "default")
    s3.put_object(Bucket=bucket, Key=f"{PREFIX}/default/run1-e1/adapter_model.safetensors", Body=os.urandom(8192))
    replica = host_store(tmp_path, "replica", bucket, s3_endpoint)

    with pytest.raises(AdapterError, match=r"adapter_model\.safetensors has sha256 .* tampered with; refused"):
        replica.fetch(address)
    assert list((replica.cache_dir / "default").iterdir()) == []  # neither the adapter nor a half-written folder


def test_an_adapter_without_its_manifest_is_refused(tmp_path, bucket, s3, s3_endpoint):
    """A worker that died mid-upload leaves files but no manifest; no row names them, and a fetch refuses."""
    folder = adapter_folder(tmp_path / "worker")
    address = host_store(tmp_path, "worker", bucket, s3_endpoint).upload(folder, "default")
    s3.delete_object(Bucket=bucket, Key=f"{PREFIX}/default/run1-e1/{MANIFEST}")

    with pytest.raises(AdapterError, match="no reverie-manifest.json: not uploaded completely"):
        host_store(tmp_path, "replica", bucket, s3_endpoint).fetch(address)


def test_published_objects_are_immutable(tmp_path, bucket, s3, s3_endpoint):
    weights = os.urandom(8192)
    store = host_store(tmp_path, "worker", bucket, s3_endpoint)
    address = store.upload(adapter_folder(tmp_path / "first", weights=weights), "default")
    assert store.upload(adapter_folder(tmp_path / "retry", weights=weights), "default") == address  # same bytes

    with pytest.raises(ConflictError, match="already holds other bytes; published adapters are immutable"):
        store.upload(adapter_folder(tmp_path / "other"), "default")  # same name, other weights

    key = f"{PREFIX}/default/run1-e1/adapter_model.safetensors"
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == weights
    assert (host_store(tmp_path, "replica", bucket, s3_endpoint).fetch(address) / "adapter_model.safetensors").read_bytes() == weights


def test_forgetting_deletes_the_objects_and_the_cached_copy(tmp_path, bucket, s3, s3_endpoint):
    folder = adapter_folder(tmp_path / "worker")
    worker = host_store(tmp_path, "worker", bucket, s3_endpoint)
    address = worker.upload(folder, "default")
    kept = worker.upload(adapter_folder(tmp_path / "kept", name="run2-e1"), "default")
    replica = host_store(tmp_path, "replica", bucket, s3_endpoint)
    cached = replica.fetch(address)

    remove_retired_folders([address], replica)

    assert keys_under(s3, bucket, f"{PREFIX}/default/run1-e1/") == []
    assert not cached.exists()
    assert len(keys_under(s3, bucket, f"{PREFIX}/default/run2-e1/")) == 4 and replica.fetch(kept).is_dir()


def test_an_unreachable_store_is_worth_retrying(tmp_path, bucket, monkeypatch):
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(AdapterStoreError, match="could not read"):
        host_store(tmp_path, "replica", bucket, closed).fetch(f"s3://{bucket}/{PREFIX}/default/run1-e1")


def test_without_an_object_store_the_adapters_folder_is_used_as_before(tmp_path, monkeypatch):
    monkeypatch.delenv("REVERIE_ADAPTER_STORE", raising=False)
    assert adapter_object_store(Settings(data_dir=tmp_path)) is None
    assert adapter_object_store(Settings(data_dir=tmp_path, adapter_store="", s3_endpoint_url="")) is None
    folder = adapter_folder(tmp_path)
    assert local_adapter_folder(str(folder), None) == folder
    remove_retired_folders([str(folder)])
    assert not folder.exists()
    with pytest.raises(AdapterError, match="REVERIE_ADAPTER_STORE is not set here"):
        local_adapter_folder("s3://adapters/prod/default/run1-e1", None)


@pytest.mark.parametrize("address", ["adapters/prod", "http://minio:9000/adapters", "s3://", "s3://Bad_Bucket/x"])
def test_a_malformed_store_address_is_refused_at_start(address):
    with pytest.raises(ValueError, match="is not s3://bucket/prefix"):
        Settings(adapter_store=address)


@pytest.mark.model
async def test_a_published_adapter_reaches_a_replica_with_an_empty_cache(
    tmp_path, bucket, s3, s3_endpoint, tiny_model_dir, database_url, caplog
):
    """The worker host publishes and uploads; an API replica on another host (its own empty adapters
    folder, the same store) fetches, verifies and serves it; a tampered next version is refused there."""
    from service.serving.adapter_sync import AdapterSync
    from service.serving.engines.local import LocalEngine
    from service.sleep.job import SleepOutcome
    from service.sleep.worker import Worker
    from service.store import episodes as episode_store
    from service.store import runs as run_store
    from service.store.db import make_engine, make_sessionmaker
    from service.store.models import Adapter, AdapterState
    from tests.adapters import make_lora
    from tests.factories import completed, make_record

    db = make_engine(database_url)
    sessions = make_sessionmaker(db)
    with sessions.begin() as session:
        episode_store.upsert_episodes(session=session, records=[completed(make_record()) for _ in range(2)])
    with sessions() as session:
        run = run_store.enqueue_run(session=session, namespace="default", trigger="manual")[0]
    candidate = make_lora(tiny_model_dir, tmp_path / "candidate", seed=1)
    worker = Worker(
        session_factory=sessions,
        consolidator=lambda job, progress: SleepOutcome(adapter_dir=candidate, accepted=True, rank=4),
        base_model=lambda: tiny_model_dir,
        adapters_dir=tmp_path / "worker" / "adapters",
        lease_s=30,
        object_store=host_store(tmp_path, "worker", bucket, s3_endpoint),
    )
    assert worker.run_once().state == "published"
    with sessions() as session:
        published = session.query(Adapter).one()
    folder = f"{run.id.hex}-e1"
    assert published.path == f"s3://{bucket}/{PREFIX}/default/{folder}"  # recorded after the upload
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"{PREFIX}/default/{folder}/{MANIFEST}")["Body"].read())
    assert manifest["files"]["adapter_model.safetensors"]["sha256"] == hashlib.sha256(
        (candidate / "adapter_model.safetensors").read_bytes()
    ).hexdigest()

    replica = host_store(tmp_path, "replica", bucket, s3_endpoint)
    engine = LocalEngine(tiny_model_dir)
    await engine.start()
    try:
        sync = AdapterSync(engine, sessions, object_store=replica)
        await sync.sync_once()
        assert engine.active_adapter("default") == "mem-default-v1"
        assert [info.path for info in engine.loaded_adapters()] == [str(replica.cache_dir / "default" / folder)]

        # v2 reaches the store damaged: the replica refuses it, keeps serving v1, caches nothing of it.
        tampered = host_store(tmp_path, "worker", bucket, s3_endpoint).upload(
            publish_folder(make_lora(tiny_model_dir, tmp_path / "v2", seed=2), tmp_path / "v2-published" / "run2-e1"),
            "default",
        )
        s3.put_object(Bucket=bucket, Key=f"{PREFIX}/default/run2-e1/adapter_model.safetensors", Body=b"\0" * 64)
        with sessions.begin() as session:
            session.query(Adapter).update({Adapter.state: AdapterState.CANDIDATE})
            session.add(Adapter(id=uuid.uuid4(), namespace="default", version=2, parent_version=1, path=tampered,
                                rank=4, state=AdapterState.ACTIVE))
        with caplog.at_level(logging.ERROR, logger="service.serving.adapter_sync"):
            await sync.sync_once()
        assert engine.active_adapter("default") == "mem-default-v1"
        assert "cannot serve mem-default-v2" in caplog.text and "tampered with; refused" in caplog.text
        assert sorted(p.name for p in (replica.cache_dir / "default").iterdir()) == [folder]

        # Forgotten: every version retired; the replica serves the base model and its cached copy goes.
        with sessions.begin() as session:
            session.query(Adapter).update({Adapter.state: AdapterState.RETIRED})
        await sync.sync_once()
        assert engine.active_adapter("default") is None and engine.loaded_adapters() == []
        assert list((replica.cache_dir / "default").iterdir()) == []
    finally:
        await engine.stop()
        db.dispose()
