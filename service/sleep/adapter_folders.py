"""Adapter folders on disk: published atomically and immutable (copy to `<final>.tmp`, fsync every
file, rename, fsync the parent), deleted once retired."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from service.store.spool import fsync_path


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


def remove_retired_folders(paths: list[str]) -> None:
    """Delete retired adapters from disk once no engine serves them (their weights hold the forgotten)."""
    for path in paths:
        shutil.rmtree(Path(path), ignore_errors=True)
