import json
from pathlib import Path

import numpy as np
import yaml
from click.testing import CliRunner

from simrag.cli import main
from simrag.machine import describe
from simrag.vectorstore import write_collection
from simrag.verify import compare, duration, flatten, fresh_run, same_index_contents


def _run(root: Path, token_f1: float, index_md5: str, seconds: float) -> Path:
    (root / "metrics" / "eval").mkdir(parents=True)
    lock = {
        "schema": "2.0",
        "stages": {
            "index": {"cmd": "x", "outs": [{"path": "data/index", "md5": index_md5}]},
            "train_stage1": {"cmd": "y", "outs": [{"path": "data/models/stage1", "md5": "aaa.dir"}]},
            # a metrics file holds times, so its hash differs from run to run: its values are compared
            "evaluate": {"cmd": "z", "outs": [{"path": "metrics/eval/stage1.json", "md5": f"{seconds}"}]},
        },
    }
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    metrics = {
        "token_f1": {"mean": token_f1, "ci_low": 0.1},
        "generation_seconds": seconds,
        "tokens_per_second": 100 / seconds,
        "machine": {"cpu": "AMD EPYC" if seconds > 1 else "Intel Xeon"},
        "verdicts": [{"kept": 3}],
    }
    (root / "metrics" / "eval" / "stage1.json").write_text(json.dumps(metrics))
    (root / "metrics" / "timing.json").write_text(json.dumps({"stage1": {"mean": seconds}}))
    return root


def test_flatten_names_every_leaf() -> None:
    assert flatten({"a": {"b": [1, {"c": 2}]}, "d": "x"}) == {"a.b[0]": 1, "a.b[1].c": 2, "d": "x"}


def test_times_and_machines_are_not_compared_but_every_other_value_is(tmp_path: Path) -> None:
    committed = _run(tmp_path / "committed", 0.25, "111.dir", seconds=2.0)
    same = compare(committed, _run(tmp_path / "same", 0.25, "111.dir", seconds=0.5))
    assert same.reproduced and same.outputs_same == 2 and same.outputs_timed == 1 and same.metrics_same == 3
    assert same.metrics_left_out == 4  # two times, a throughput, the machine; the timing file
    other = compare(committed, _run(tmp_path / "other", 0.2501, "222.dir", seconds=2.0))
    assert not other.reproduced
    assert [d.where for d in other.output_differences] == ["dvc.lock: index -> data/index"]
    assert [d.where for d in other.metric_differences] == ["metrics/eval/stage1.json: token_f1.mean"]
    assert "+0.0001" in other.metric_differences[0].describe()
    assert "NOT reproduced" in other.report()


def test_verify_command_compares_a_finished_run(tmp_path: Path, monkeypatch) -> None:
    committed = _run(tmp_path / "committed", 0.25, "111.dir", seconds=2.0)
    monkeypatch.chdir(committed)
    runner = CliRunner()
    same = runner.invoke(main, ["verify", "--compare-only", str(_run(tmp_path / "same", 0.25, "111.dir", 3.0))])
    assert same.exit_code == 0 and "reproduced exactly" in same.output
    differs = runner.invoke(main, ["verify", "--compare-only", str(_run(tmp_path / "b", 0.3, "111.dir", 3.0))])
    assert differs.exit_code == 1 and "token_f1.mean: 0.25 -> 0.3" in differs.output
    monkeypatch.chdir(tmp_path)
    nowhere = runner.invoke(main, ["verify", "--compare-only", str(committed)])
    assert nowhere.exit_code != 0 and "no dvc.lock here" in nowhere.output


def _index(path: Path, vectors: np.ndarray) -> Path:
    write_collection(path, "chunks", ["a", "b"], vectors, ["one", "two"], [{"doc": "x"}, {"doc": "y"}], {"k": 1})
    return path


def test_an_index_rebuilt_from_the_same_vectors_counts_as_the_same(tmp_path: Path) -> None:
    vectors = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    first, again = _index(tmp_path / "a" / "data/index", vectors), _index(tmp_path / "b" / "data/index", vectors)
    assert (first / "chroma.sqlite3").read_bytes() != (again / "chroma.sqlite3").read_bytes()  # random ids
    assert same_index_contents(first, again)
    vectors[1] = [0.6, 0.8]
    assert not same_index_contents(first, _index(tmp_path / "c" / "data/index", vectors))
    for root, md5 in ((tmp_path / "a", "111.dir"), (tmp_path / "b", "222.dir"), (tmp_path / "c", "333.dir")):
        lock = {"schema": "2.0", "stages": {"index": {"cmd": "x", "outs": [{"path": "data/index", "md5": md5}]}}}
        (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    rebuilt = compare(tmp_path / "a", tmp_path / "b")
    assert rebuilt.reproduced and rebuilt.outputs_same_contents == ["dvc.lock: index -> data/index"]
    assert "1 the same index contents" in rebuilt.report()
    other = compare(tmp_path / "a", tmp_path / "c")
    assert not other.reproduced and [d.where for d in other.output_differences] == ["dvc.lock: index -> data/index"]


def test_duration_reads_as_hours_and_minutes() -> None:
    assert [duration(s) for s in (29, 2820, 3600, 7920)] == ["0 min", "47 min", "1 h 0 min", "2 h 12 min"]


def test_a_fresh_run_clones_points_at_the_remote_runs_every_stage_and_says_how_long(
    tmp_path: Path, monkeypatch
) -> None:
    import subprocess

    import simrag.verify

    calls: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kwargs: calls.append(cmd))
    monkeypatch.setattr(simrag.verify, "remote_urls", lambda root: {"registry": "/data/dvc-store"})
    lines: list[str] = []
    seconds = fresh_run(tmp_path / "repo", tmp_path / "scratch", log=lines.append)
    assert [c[:2] for c in calls] == [["git", "clone"], ["dvc", "remote"], ["dvc", "repro"]]
    assert calls[1][-2:] == ["url", "/data/dvc-store"] and "--no-run-cache" in calls[2]
    assert seconds >= 0 and lines[-1] == f"the whole pipeline ran in 0 min ({seconds:.0f} s) on {describe()}"
