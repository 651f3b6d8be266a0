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


def test_train_stage1_runs_as_two_data_parallel_cpu_processes(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "alpaca.json"
    data.write_text(
        json.dumps([{"instruction": c.user, "input": "", "output": c.assistant} for c in CONVERSATIONS * 3])
    )
    params = {
        "model": {"device": "cpu"},
        "train": {"batch_size": 2, "max_steps": 2, "eval_steps": 1, "max_len": 128},
        "stage1": {"data": [str(data)], "val_size": 2},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out, metrics = tmp_path / "stage1", tmp_path / "train_stage1.json"
    # torchrun: what `accelerate launch --multi_gpu` runs on GPUs; on a CPU the processes talk over gloo.
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517"]
    args = ["--base", str(tiny_model_dir), "--out", str(out), "--checkpoints", str(tmp_path / "ckpt")]
    args += ["--plots", str(tmp_path / "plots"), "--metrics", str(metrics)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [*launch, str(ROOT / "stages" / "train_stage1.py"), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stderr.count("train_stage1: start") == 2  # two processes ran the stage
    figures = read_json(metrics)
    # Two processes of batch 2 each: 2 updates see 8 examples (4 per process).
    assert figures["steps"] == 2 and figures["examples"]["train"] == 10
    assert (out / "adapter_config.json").is_file() and (tmp_path / "plots" / "curves.png").is_file()
    assert not (tmp_path / "ckpt").exists()  # removed once, by the main process
