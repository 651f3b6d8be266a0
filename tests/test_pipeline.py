"""End to end through DVC: `prepare` and `index` on the devops-small corpus, as a user runs them."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from simrag.profiles import load_profile, merge
from tests.conftest import ROOT

SMALL = ROOT / "data" / "raw" / "corpus" / "devops-small"
QUESTIONS = ROOT / "data" / "raw" / "eval" / "devops_public.jsonl"

pytestmark = pytest.mark.slow


def _dvc(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=workdir, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"dvc {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    if not SMALL.is_dir() or not QUESTIONS.is_file():
        pytest.fail("devops-small and eval data are missing: run `make data-test` (dvc pull) first")
    workdir = tmp_path_factory.mktemp("project")
    for name in ("dvc.yaml", "stages", "simrag"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, workdir / name)
    params = merge(yaml.safe_load((ROOT / "params.yaml").read_text()), load_profile(ROOT / "profiles" / "smoke.yaml"))
    assert params["prepare"]["corpus_dir"] == "data/raw/corpus/devops-small"  # the smoke profile's corpus
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.copytree(SMALL, workdir / "data" / "raw" / "corpus" / "devops-small")
    _dvc(workdir, "init", "--no-scm", "-q")
    _dvc(workdir, "config", "core.analytics", "false")
    _dvc(workdir, "repro", "index")
    return workdir


def test_repro_builds_chunks_index_and_metrics(project):
    prepare = json.loads((project / "metrics" / "prepare.json").read_text())
    index = json.loads((project / "metrics" / "index.json").read_text())
    assert prepare["documents"] >= 190 and prepare["chunks"] > 1000
    assert index["vectors"] == prepare["chunks"] and index["dimension"] == 384
    assert prepare["peak_memory_mb"] > 0 and index["peak_memory_mb"] > 0  # every stage records its peak
    assert (project / "dvc.lock").is_file()
    shown = _dvc(project, "metrics", "show", "--json").stdout
    assert "chunks_per_second" in shown


def test_second_repro_does_nothing(project):
    out = _dvc(project, "repro", "index").stdout
    assert "didn't change, skipping" in out and "Running stage" not in out


def test_gold_documents_are_retrieved_in_the_top_5(project):
    from simrag.retrieval import Retriever

    questions = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    retriever = Retriever(project / "data" / "index")
    results = retriever.search_many([q["question"] for q in questions], k=5)
    found = [any(hit.doc == q["gold_doc"] for hit in hits) for q, hits in zip(questions, results, strict=True)]
    first = next(q for q in questions if q["id"] == "q001")
    assert found[questions.index(first)], "the gold document of 'What is Docker?' is not in the top 5"
    assert sum(found) / len(found) >= 0.8, f"gold recall@5 {sum(found)}/{len(found)}"
