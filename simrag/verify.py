"""Does the pipeline reproduce itself? Compare a fresh run's outputs with the committed ones.

`simrag verify` clones the repository at HEAD into a scratch folder, runs `dvc repro --pull
--no-run-cache` there (every stage executes; nothing is restored from the cache), and compares with the
working copy:

- every output hash in `dvc.lock`: which stage outputs are byte for byte the same;
- every value of every metrics file: numbers must be equal, except the ones a rerun cannot repeat (times,
  throughputs, peak memory, the machine's description), which are left out and counted.

`simrag verify --compare-only SCRATCH` compares a finished scratch run again without rerunning it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Values a rerun on the same inputs is not expected to repeat: wall-clock times, speeds, memory, the host.
# (An index folder's size, `index_mb`, moves with Chroma's SQLite pages: the index's contents are compared.)
VOLATILE_KEY = re.compile(
    r"(?:^|_)seconds$|_per_second$|^peak_memory_mb$|^index_mb$|^memory_kind$|^machine$|^resumed_from_step$"
)
VOLATILE_FILE = re.compile(r"(?:^|/)timing\.json$")  # per-query times at batch 1: every value is a time
# Stage outputs whose bytes hold times: not compared by hash. Metrics files are compared value by value
# instead; the report's statistics are in metrics/summary.json and plots/eval/comparisons.json.
TIMED_OUTPUT = re.compile(r"^metrics/|^reports/results\.md$")


@dataclass(frozen=True)
class Difference:
    where: str  # "metrics/eval/stage1/devops_dev.json: token_f1.mean" or "dvc.lock: index -> data/index"
    committed: Any
    fresh: Any

    def describe(self) -> str:
        delta = ""
        if _is_number(self.committed) and _is_number(self.fresh):
            delta = f" ({self.fresh - self.committed:+.6g})"
        return f"{self.where}: {self.committed!r} -> {self.fresh!r}{delta}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf values of nested dicts and lists by dotted path ("a.b[2].c")."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list):
        out = {}
        for i, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def _volatile(path: str) -> bool:
    return any(VOLATILE_KEY.search(re.sub(r"(?:\[\d+\])+$", "", part)) for part in path.split("."))


def metric_values(root: Path) -> tuple[dict[str, Any], int]:
    """Every comparable metric value under root/metrics, keyed "file: path", and how many were left out."""
    values: dict[str, Any] = {}
    left_out = 0
    for file in sorted((root / "metrics").rglob("*.json")):
        name = file.relative_to(root).as_posix()
        for path, value in flatten(json.loads(file.read_text(encoding="utf-8"))).items():
            if VOLATILE_FILE.search(name) or _volatile(path):
                left_out += 1
            else:
                values[f"{name}: {path}"] = value
    return values, left_out


def lock_outputs(root: Path) -> dict[str, str]:
    """The hash of every stage output in root/dvc.lock, keyed "stage -> path"."""
    lock = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8")) or {}
    outputs: dict[str, str] = {}
    for stage, entry in (lock.get("stages") or {}).items():
        for out in entry.get("outs") or []:
            outputs[f"{stage} -> {out['path']}"] = str(out.get("md5") or out.get("hash") or "")
    return outputs


def same_index_contents(a: Path, b: Path) -> bool:
    """Two Chroma folders hold the same collections: names, metadata, ids, texts, metadatas and vectors.
    (Their bytes differ from build to build: Chroma names collections and segments by random UUIDs.)"""
    from simrag.vectorstore import read_only_client

    def contents(path: Path) -> dict[str, Any]:
        out = {}
        for collection in read_only_client(path).list_collections():
            got = collection.get(include=["embeddings", "documents", "metadatas"])
            ids, texts = got["ids"], got["documents"] or []
            metadatas, vectors = got["metadatas"] or [], got["embeddings"]
            order = sorted(range(len(ids)), key=ids.__getitem__)
            out[collection.name] = (
                collection.metadata,
                [ids[i] for i in order],
                [texts[i] for i in order],
                [metadatas[i] for i in order],
                [list(vectors[i]) for i in order] if vectors is not None else [],
            )
        return out

    return contents(a) == contents(b)


def _is_index(path: Path) -> bool:
    return (path / "chroma.sqlite3").is_file()


@dataclass
class Comparison:
    outputs_same: int
    output_differences: list[Difference]
    metrics_same: int
    metric_differences: list[Difference]
    metrics_left_out: int
    outputs_same_contents: list[str] = field(default_factory=list)  # indexes: same vectors, other ids
    outputs_timed: int = 0  # metrics files and the report: compared value by value, or not at all

    @property
    def reproduced(self) -> bool:
        return not self.output_differences and not self.metric_differences

    def report(self) -> str:
        lines = [
            f"stage outputs: {self.outputs_same} identical, {len(self.outputs_same_contents)} the same index "
            f"contents (Chroma's random ids differ), {self.outputs_timed} holding times (metrics compared "
            f"value by value below; the report's text), {len(self.output_differences)} differ",
            *(f"  same contents: {where}" for where in self.outputs_same_contents),
            *(f"  {d.where}" for d in self.output_differences),
            f"metrics: {self.metrics_same} identical, {len(self.metric_differences)} differ "
            f"({self.metrics_left_out} times, throughputs and memory figures not compared)",
            *(f"  {d.describe()}" for d in self.metric_differences),
        ]
        lines.append("reproduced exactly" if self.reproduced else "NOT reproduced exactly")
        return "\n".join(lines)


def _diff(committed: dict[str, Any], fresh: dict[str, Any], label: str = "") -> tuple[int, list[Difference]]:
    same, differences = 0, []
    for key in sorted(set(committed) | set(fresh)):
        a, b = committed.get(key, "<missing>"), fresh.get(key, "<missing>")
        if a == b:
            same += 1
        else:
            differences.append(Difference(f"{label}{key}", a, b))
    return same, differences


def compare(committed_root: Path, fresh_root: Path) -> Comparison:
    """The committed run (a working copy) against a fresh one (a scratch run of the same commit)."""
    ours, theirs = lock_outputs(committed_root), lock_outputs(fresh_root)
    timed = {key for key in set(ours) | set(theirs) if TIMED_OUTPUT.search(key.split(" -> ", 1)[1])}
    outputs_same, differences = _diff(
        {k: v for k, v in ours.items() if k not in timed},
        {k: v for k, v in theirs.items() if k not in timed},
        "dvc.lock: ",
    )
    same_contents, output_differences = [], []
    for difference in differences:
        path = difference.where.split(" -> ", 1)[1]
        a, b = committed_root / path, fresh_root / path
        if _is_index(a) and _is_index(b) and same_index_contents(a, b):
            same_contents.append(difference.where)
        else:
            output_differences.append(difference)
    committed, left_out = metric_values(committed_root)
    fresh, _ = metric_values(fresh_root)
    metrics_same, metric_differences = _diff(committed, fresh)
    return Comparison(
        outputs_same, output_differences, metrics_same, metric_differences, left_out, same_contents, len(timed)
    )


def remote_urls(root: Path) -> dict[str, str]:
    """The DVC remotes of the repository at root, their URLs resolved (a relative path is relative to the
    config file that names it, so a clone elsewhere must be told where the remote is)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return {name: str(conf["url"]) for name, conf in repo.config["remote"].items() if "url" in conf}


def duration(seconds: float) -> str:
    """A wall time as people read it: '47 min', '2 h 12 min'."""
    minutes = round(seconds / 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def fresh_run(root: Path, scratch: Path, log: Any = print) -> float:
    """Clone root at HEAD into scratch (a new folder) and run the whole pipeline there: the raw data pulled
    from root's remote, every stage executed. Returns the pipeline's wall time in seconds (logged with the
    machine it ran on: what the default `dvc repro` costs from an empty clone)."""
    import os
    import subprocess
    import sys
    import time

    from simrag.machine import describe

    # The stages call `python` and `dvc`: this environment's, wherever the command was started from; and
    # they import the clone's `simrag`, not the working copy's (an editable install points there).
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(scratch.resolve()),
    }
    if scratch.exists() and any(scratch.iterdir()):
        raise FileExistsError(f"{scratch} is not empty: name a new folder for the fresh run")
    subprocess.run(["git", "clone", "--quiet", str(root), str(scratch)], check=True)
    for name, url in remote_urls(root).items():
        subprocess.run(["dvc", "remote", "modify", "--local", name, "url", url], cwd=scratch, env=env, check=True)
    log(f"running the pipeline in {scratch} (every stage executes: hours on a laptop CPU)")
    started = time.perf_counter()
    subprocess.run(["dvc", "repro", "--pull", "--no-run-cache"], cwd=scratch, env=env, check=True)
    seconds = time.perf_counter() - started
    log(f"the whole pipeline ran in {duration(seconds)} ({seconds:.0f} s) on {describe()}")
    return seconds
