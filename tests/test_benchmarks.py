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
