"""Adapter folders on disk: published atomically and immutable (copy to `<final>.tmp`, fsync every
file, rename, fsync the parent), deleted once retired (with their objects, when an object store holds
them: `service/object_store.py`)."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from service.errors import AdapterStoreError
from service.object_store import AdapterObjectStore, is_object_address
from service.store.spool import fsync_path

log = logging.getLogger(__name__)


def publish_folder(source: Path, final: Path) -> Path:
    """Copy `source` to `final` so that `final` either does not exist or is complete, durably."""
    final = Path(final)
    if final.exists():
        raise FileExistsError(f"{final} is already published; published adapters are immutable")
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copytree(source, tmp)
        for path in sorted(tmp.rglob("*"), reverse=True):  # files before their folders
            fsync_path(path)
        fsync_path(tmp)
        os.rename(tmp, final)
        fsync_path(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def remove_retired_folders(paths: list[str], object_store: AdapterObjectStore | None = None) -> None:
    """Delete retired adapters once no engine serves them (their weights and dreams hold the forgotten):
    a local folder, or an object-store adapter's objects and this host's cached copy."""
    for path in paths:
        if not is_object_address(path):
            shutil.rmtree(Path(path), ignore_errors=True)
            continue
        try:
            if object_store is None:
                raise AdapterStoreError("REVERIE_ADAPTER_STORE is not set in this process")
            object_store.delete(path)
        except AdapterStoreError as exc:
            # The forgetting itself is committed; say loudly what is left to erase by hand.
            log.error("retired adapter %s is still in the object store: %s; delete it by hand", path, exc.message)
