"""Checkpoints of a training run, and resuming from them: a run resumes only from a checkpoint made from
the same inputs and settings, which its fingerprint records."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from simrag.jsonio import read_json, write_json


def fingerprint(*parts: Any) -> str:
    """A short digest of JSON-able parts: what a run was made from."""
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def folder_digest(path: Path | None) -> str:
    """A folder's file names, sizes and times, digested: "" for none."""
    if path is None:
        return ""
    files = sorted(f for f in Path(path).rglob("*") if f.is_file())
    return fingerprint([(str(f.relative_to(path)), f.stat().st_size, f.stat().st_mtime_ns) for f in files])


def resume_point(checkpoint_dir: Path, run_fingerprint: str, resume: bool, prepare: bool = True) -> Path | None:
    """The last checkpoint of an interrupted run with the same fingerprint, else None (stale ones removed).

    `prepare=False` only reads: what the other processes of a multi-process run do, once the main
    process has prepared the folder.
    """
    from transformers.trainer_utils import get_last_checkpoint

    marker = checkpoint_dir / "fingerprint.json"
    if checkpoint_dir.is_dir():
        same = marker.is_file() and read_json(marker).get("fingerprint") == run_fingerprint
        last = get_last_checkpoint(str(checkpoint_dir)) if same else None
        if resume and last is not None:
            return Path(last)
        if not prepare:
            return None
        shutil.rmtree(checkpoint_dir)
    if not prepare:
        return None
    checkpoint_dir.mkdir(parents=True)
    write_json(marker, {"fingerprint": run_fingerprint})
    return None
