"""Scale-out of training: a training stage as data-parallel processes (torchrun, as `accelerate launch`
starts them on GPUs), here two CPU processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from simrag.jsonio import read_json
from tests.conftest import ROOT
from tests.test_training import CONVERSATIONS

pytestmark = pytest.mark.slow


def test_dvc_training_stages_take_their_launcher_from_params() -> None:
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name in ("train_stage1", "train_stage2", "train_retriever"):
        cmd = dvc[name].get("do", dvc[name])["cmd"]
        assert "${launch.train} stages/" in cmd, name


def _train_stage1(
    model_dir: Path,
    tmp_path: Path,
    processes: int,
    batch_size: int,
    grad_accum: int,
    port: int,
    micro_batch_tokens: int = 0,
) -> tuple[Path, subprocess.CompletedProcess]:
    """Run stages/train_stage1.py in `processes` processes (torchrun over gloo, as `accelerate launch
    --multi_gpu` runs it on GPUs) in a folder of its own; the other ranks may write nothing there."""
    work = tmp_path / f"p{processes}-t{micro_batch_tokens}"
    work.mkdir()
    data = work / "alpaca.json"
    data.write_text(
        json.dumps([{"instruction": c.user, "input": "", "output": c.assistant} for c in CONVERSATIONS * 3])
    )
    params = {
        # fp32 and no dropout: the same updates in one process or two, up to the order of the sums
        "model": {"device": "cpu", "dtype": "fp32"},
        "lora": {"dropout": 0.0},
        "train": {
            "batch_size": batch_size,
            "grad_accum": grad_accum,
            "micro_batch_tokens": micro_batch_tokens,
            "max_steps": 2,
            "eval_steps": 1,
            "max_len": 128,
            "learning_rate": 1e-3,
            "warmup_ratio": 0.0,
        },
        "stage1": {"data": [str(data)], "val_size": 2},
    }
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    outputs = {name: work / name for name in ("stage1", "ckpt", "plots", "metrics")}
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
    launch += ["--master_port", str(port)]
    args = ["--base", str(model_dir), "--out", str(outputs["stage1"]), "--checkpoints", str(outputs["ckpt"])]
    args += ["--plots", str(outputs["plots"]), "--metrics", str(outputs["metrics"] / "train_stage1.json")]
    guard = os.pathsep.join(str(path) for path in outputs.values())
    pythonpath = os.pathsep.join([str(ROOT / "tests" / "rank_guard"), str(ROOT)])
    env = {**os.environ, "PYTHONPATH": pythonpath, "OMP_NUM_THREADS": "1", "SIMRAG_RANK_GUARD": guard}
    proc = subprocess.run(
        [*launch, str(ROOT / "stages" / "train_stage1.py"), *args],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    other_ranks = "\n".join(line for line in proc.stderr.splitlines() if line.startswith("[rank1]"))
    assert proc.returncode == 0, proc.stderr[-3000:] + "\n" + other_ranks[-3000:]
    return work, proc


def _curve(work: Path, name: str) -> list[float]:
    rows = (work / "plots" / "plots" / "metrics" / f"{name}.tsv").read_text().splitlines()[1:]
    return [float(row.split("\t")[1]) for row in rows]


def test_rank_guard_refuses_writes_from_another_rank(tmp_path: Path) -> None:
    """The guard the two-process test relies on: a write by rank 1 under a guarded folder fails."""
    script = "import os; os.makedirs('out', exist_ok=True); open('out/x.json', 'w').write('{}')"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests" / "rank_guard"), "SIMRAG_RANK_GUARD": str(tmp_path)}
    main = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env={**env, "RANK": "0"})
    assert main.returncode == 0 and (tmp_path / "out" / "x.json").is_file()
    other = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env={**env, "RANK": "1"}, capture_output=True, text=True
    )
    assert other.returncode != 0 and "only the main process writes" in other.stderr


def test_train_stage1_on_two_processes_matches_one_process(tiny_model_dir: Path, tmp_path: Path) -> None:
    # Two processes of batch 2 against one process of batch 2 with 2 accumulation steps: the same 4
    # examples in each update, so the same loss and gradient norm. Only rank 0 writes (the guard fails any
    # write by rank 1 under the stage's outputs).
    two, proc = _train_stage1(tiny_model_dir, tmp_path, processes=2, batch_size=2, grad_accum=1, port=29517)
    one, _ = _train_stage1(tiny_model_dir, tmp_path, processes=1, batch_size=2, grad_accum=2, port=29518)
    assert proc.stderr.count("train_stage1: start") == 2  # two processes ran the stage
    figures = read_json(two / "metrics" / "train_stage1.json")
    assert figures["steps"] == 2 and figures["examples"]["train"] == 10
    assert (two / "stage1" / "adapter_config.json").is_file() and (two / "plots" / "curves.png").is_file()
    assert not (two / "ckpt").exists()  # removed once, by the main process
    for curve in ("loss", "grad_norm", "val_loss"):
        assert _curve(two, curve) == pytest.approx(_curve(one, curve), rel=1e-4), curve
    # each process splitting its 2 sequences by tokens (one a step, the gradients exchanged after the
    # last): the same updates again
    split, _ = _train_stage1(tiny_model_dir, tmp_path, 2, 1, 2, port=29519, micro_batch_tokens=40)
    for curve in ("loss", "grad_norm", "val_loss"):
        assert _curve(split, curve) == pytest.approx(_curve(one, curve), rel=1e-4), curve
