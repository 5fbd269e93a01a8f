"""Published adapters in an S3-compatible object store (AWS S3, MinIO, ...), for hosts that share no folder.

    REVERIE_ADAPTER_STORE=s3://bucket/prefix   REVERIE_S3_ENDPOINT_URL=http://minio:9000   (unset: AWS)

Credentials come from boto3's own chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_REGION, a
profile, an instance or pod role). The worker publishes an adapter folder locally (atomically), then
uploads its files under `<prefix>/<namespace>/<folder>/` and, last, `reverie-manifest.json` (the sha256
and size of every file); the store records the adapter's `s3://` address only after the manifest is
up, so no host ever sees an adapter it cannot fetch. Objects are immutable: an upload never replaces
an object that holds other bytes. Every host fetches an adapter into its local adapters folder (the
cache, same layout as the worker's) before loading it: into a hidden temporary folder, every file
checked against the manifest, then renamed into place, so the cache only ever holds complete,
verified folders. Forgetting deletes a retired adapter's objects and cached copies.

The manifest catches damaged, truncated or swapped objects; it is not a signature: whoever may write
the bucket may rewrite a manifest too, so write access stays with the worker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from service.errors import AdapterError, AdapterStoreError, ConflictError
from service.store.spool import fsync_path

log = logging.getLogger(__name__)

SCHEME = "s3://"
MANIFEST = "reverie-manifest.json"
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # a namespace or a published folder's name
_CHUNK = 1 << 20


def is_object_address(path: str) -> bool:
    """Whether an adapter's recorded path names an object-store prefix rather than a local folder."""
    return path.startswith(SCHEME)


def split_address(address: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> (`bucket`, `some/prefix`)."""
    bucket, _, key = address.removeprefix(SCHEME).partition("/")
    return bucket, key.strip("/")


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        for block in iter(lambda: source.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _unavailable(what: str, exc: Exception) -> AdapterStoreError:
    return AdapterStoreError(f"the adapter object store could not {what}: {type(exc).__name__}: {exc}")


class AdapterObjectStore:
    """One bucket prefix of published adapters, and this host's cache of them (`cache_dir`)."""

    def __init__(self, address: str, *, cache_dir: Path, endpoint_url: str | None = None):
        import boto3

        self.bucket, self.prefix = split_address(address)
        self.cache_dir = Path(cache_dir)
        self._s3 = boto3.client("s3", endpoint_url=endpoint_url or None)  # thread-safe: shared by threads

    def address_of(self, namespace: str, folder_name: str) -> str:
        key = "/".join(part for part in (self.prefix, namespace, folder_name) if part)
        return f"{SCHEME}{self.bucket}/{key}"

    # -- the worker's side ----------------------------------------------------------------------------
    def upload(self, folder: Path, namespace: str) -> str:
        """Upload a published adapter folder; returns the address to record. Idempotent for the same
        bytes; `ConflictError` if any of its objects already holds other bytes (objects are immutable)."""
        folder = Path(folder)
        address = self.address_of(namespace, folder.name)
        _, key = split_address(address)
        files = {path.relative_to(folder).as_posix(): path for path in sorted(folder.rglob("*")) if path.is_file()}
        entries = {name: {"sha256": _sha256_of(path), "size": path.stat().st_size} for name, path in files.items()}
        for name, path in files.items():
            with open(path, "rb") as body:
                self._put_once(f"{key}/{name}", body, entries[name]["sha256"])
        manifest = json.dumps({"format": 1, "files": entries}, indent=1, sort_keys=True).encode()
        self._put_once(f"{key}/{MANIFEST}", manifest, hashlib.sha256(manifest).hexdigest())  # last: complete
        log.info("uploaded adapter %s (%d files)", address, len(files))
        return address

    def _put_once(self, key: str, body: Any, sha256: str) -> None:
        """Create `key` unless it exists; an existing object must hold the same bytes (a retried upload)."""
        from botocore.exceptions import BotoCoreError, ClientError

        where = f"{SCHEME}{self.bucket}/{key}"
        try:
            existing = self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
                raise _unavailable(f"read {where}", exc) from exc
            existing = None
        except BotoCoreError as exc:
            raise _unavailable(f"read {where}", exc) from exc
        if existing is not None:
            if existing.get("Metadata", {}).get("sha256") == sha256:
                return
            raise ConflictError(f"{where} already holds other bytes; published adapters are immutable")
        try:
            # If-None-Match: a store that honours it (S3, MinIO) refuses a write that raced past the check.
            self._s3.put_object(
                Bucket=self.bucket, Key=key, Body=body, Metadata={"sha256": sha256}, IfNoneMatch="*"
            )
        except ClientError as exc:
            if _error_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise ConflictError(f"{where} was written meanwhile; published adapters are immutable") from exc
            raise _unavailable(f"write {where}", exc) from exc
        except BotoCoreError as exc:
            raise _unavailable(f"write {where}", exc) from exc

    # -- every host's side ----------------------------------------------------------------------------
    def cache_path(self, address: str) -> Path:
        """Where `address` lives in this host's cache: `<cache>/<namespace>/<folder>`, as the worker
        wrote it."""
        _, key = split_address(address)
        parts = key.split("/")
        if len(parts) < 2 or not all(_SEGMENT.match(part) for part in parts[-2:]):
            raise AdapterError(f"{address} does not name an adapter (s3://bucket/prefix/<namespace>/<folder>)")
        return self.cache_dir / parts[-2] / parts[-1]

    def fetch(self, address: str) -> Path:
        """The local folder of `address`: the cached copy, or downloaded, verified and renamed into the cache.

        `AdapterError` when the adapter is incomplete or a file does not match its manifest (nothing is
        cached then); `AdapterStoreError` when the store cannot be reached (worth retrying)."""
        final = self.cache_path(address)
        if final.is_dir():
            return final
        bucket, key = split_address(address)
        manifest = self._manifest(bucket, key, address)
        final.parent.mkdir(parents=True, exist_ok=True)
        # Hidden and unique: concurrent fetches on one host do not collide, and nobody takes it for an adapter.
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".fetching", dir=final.parent))
        try:
            for name, entry in manifest.items():
                target = tmp.joinpath(*PurePosixPath(name).parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                digest, size = self._download(bucket, f"{key}/{name}", target)
                if digest != entry.get("sha256") or size != entry.get("size", size):
                    raise AdapterError(
                        f"{address}/{name} has sha256 {digest} ({size} bytes) but its manifest says "
                        f"{entry.get('sha256')} ({entry.get('size')} bytes): damaged or tampered with; refused"
                    )
                fsync_path(target)
            for path in sorted(tmp.rglob("*"), reverse=True):
                if path.is_dir():
                    fsync_path(path)
            fsync_path(tmp)
            try:
                os.rename(tmp, final)
            except OSError:
                if not final.is_dir():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)  # another fetch on this host finished first
            fsync_path(final.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("fetched adapter %s into %s", address, final)
        return final

    def _manifest(self, bucket: str, key: str, address: str) -> dict[str, dict]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = self._s3.get_object(Bucket=bucket, Key=f"{key}/{MANIFEST}")["Body"].read()
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                raise AdapterError(f"{address} has no {MANIFEST}: not uploaded completely, or deleted") from exc
            raise _unavailable(f"read {address}/{MANIFEST}", exc) from exc
        except BotoCoreError as exc:
            raise _unavailable(f"read {address}/{MANIFEST}", exc) from exc
        try:
            files = json.loads(body)["files"]
            if not all(isinstance(entry, dict) for entry in files.values()):
                raise TypeError("every file needs its sha256 and size")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise AdapterError(f"{address}/{MANIFEST} is not a manifest: {exc}") from exc
        for name in files:
            parts = PurePosixPath(name).parts
            if not parts or name.startswith("/") or ".." in parts or name == MANIFEST:
                raise AdapterError(f"{address}/{MANIFEST} names {name!r}, not a file inside the adapter; refused")
        return files

    def _download(self, bucket: str, key: str, target: Path) -> tuple[str, int]:
        """Stream one object into `target`; returns its sha256 and size as received."""
        from botocore.exceptions import BotoCoreError, ClientError

        digest, size = hashlib.sha256(), 0
        try:
            body = self._s3.get_object(Bucket=bucket, Key=key)["Body"]
            with open(target, "wb") as out:
                for block in iter(lambda: body.read(_CHUNK), b""):
                    digest.update(block)
                    size += len(block)
                    out.write(block)
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                raise AdapterError(f"{SCHEME}{bucket}/{key} is in the manifest but not in the store") from exc
            raise _unavailable(f"read {SCHEME}{bucket}/{key}", exc) from exc
        except BotoCoreError as exc:
            raise _unavailable(f"read {SCHEME}{bucket}/{key}", exc) from exc
        return digest.hexdigest(), size

    def evict(self, address: str) -> None:
        """Drop this host's cached copy (a retired adapter, once no engine here serves it)."""
        try:
            shutil.rmtree(self.cache_path(address), ignore_errors=True)
        except AdapterError:
            pass  # an address that names no adapter has no cached copy

    def delete(self, address: str) -> None:
        """Erase a retired adapter: its manifest first (no fetch starts on a half-deleted adapter), then
        its files, then this host's cached copy. Other hosts evict theirs on their next adapter sync."""
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = split_address(address)
        try:
            self._s3.delete_object(Bucket=bucket, Key=f"{key}/{MANIFEST}")
            for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{key}/"):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    self._s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(f"delete {address}", exc) from exc
        self.evict(address)


def adapter_object_store(settings) -> AdapterObjectStore | None:
    """The object store `settings` name (`REVERIE_ADAPTER_STORE`), or None: the adapters folder alone."""
    if not settings.adapter_store:
        return None
    return AdapterObjectStore(
        settings.adapter_store, cache_dir=settings.adapters_dir, endpoint_url=settings.s3_endpoint_url
    )


def local_adapter_folder(path: str | None, store: AdapterObjectStore | None) -> Path | None:
    """The local folder an engine or the trainer reads for a recorded adapter path (None: no adapter),
    fetched into this host's cache if it lives in the object store."""
    if path is None:
        return None
    if not is_object_address(path):
        return Path(path)
    if store is None:
        raise AdapterError(f"adapter {path} lives in an object store, but REVERIE_ADAPTER_STORE is not set here")
    return store.fetch(path)

