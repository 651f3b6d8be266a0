"""The benchmark scripts start (they import and parse their options), and name the machine they run on."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

SCRIPTS = sorted((ROOT / "benchmarks").glob("bench_*.py"))


def test_every_benchmark_is_listed():
    assert len(SCRIPTS) >= 8


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_benchmark_starts(script):
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout


def test_machine_line_names_cores_and_bf16(monkeypatch):
    from simrag import machine

    monkeypatch.setattr(machine, "_cpuinfo", lambda: ("Some CPU", {"avx512f", "avx512_bf16"}))
    line = machine.describe()
    assert line.startswith("Some CPU, ") and "cores" in line and line.endswith("bf16 on AVX-512")
    monkeypatch.setattr(machine, "_cpuinfo", lambda: ("Some CPU", {"amx_bf16", "avx512_bf16"}))
    assert machine.describe().endswith("bf16 on AMX")
    monkeypatch.setattr(machine, "_cpuinfo", lambda: ("", set()))
    assert machine.describe().endswith("bf16 support unknown")


def test_bench_training_sets_a_param_for_its_run_and_names_a_bad_one(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import bench_training
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    import click

    params = tmp_path / "params.yaml"
    params.write_text("train:\n  batch_size: 2\n  micro_batch_tokens: 0\nstage2: {epochs: 1}\n")
    changed = bench_training.with_overrides(params, ("train.micro_batch_tokens=1024", "stage2.epochs=2.5"))
    assert changed == {"train": {"batch_size": 2, "micro_batch_tokens": 1024}, "stage2": {"epochs": 2.5}}
    with pytest.raises(click.BadParameter, match="no block 'trian'"):
        bench_training.with_overrides(params, ("trian.batch_size=4",))
    with pytest.raises(click.BadParameter, match="expected key=value"):
        bench_training.with_overrides(params, ("train.batch_size",))
