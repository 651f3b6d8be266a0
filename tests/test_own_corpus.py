"""End to end through DVC, as the README's "your own corpus" recipe runs it: a folder of PDF and Word files
becomes the corpus, `make_evalset` writes questions from chunks held out of Stage 2, and `evaluate` scores
the base model (SmolLM2-135M from its pip package) on them."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from simrag.evalset import held_out_chunks, stage2_chunks
from simrag.jsonio import read_jsonl
from tests.conftest import ROOT, TOPICS
from tests.test_office import make_docx, make_pdf

pytestmark = pytest.mark.slow


def _dvc(workdir: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=workdir, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"dvc {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _corpus(folder: Path) -> None:
    """Ten documents of two topics each: eight PDFs, two Word files, and a PDF locked with a password."""
    texts = [text for text, _question in TOPICS.values()]
    names = list(TOPICS)
    for i in range(0, len(texts), 2):
        title = f"{names[i]} and {names[i + 1]}"
        if i // 2 in (3, 7):
            (folder / f"doc{i // 2}.docx").write_bytes(make_docx(title, [texts[i], texts[i + 1]]))
        else:
            lines = [texts[i][k : k + 80] for k in range(0, len(texts[i]), 80)] + [""]
            lines += [texts[i + 1][k : k + 80] for k in range(0, len(texts[i + 1]), 80)]
            (folder / f"doc{i // 2}.pdf").write_bytes(make_pdf([lines], title=title))
    (folder / "locked.pdf").write_bytes(make_pdf([["a secret"]], password="s3cret"))


def test_a_folder_of_pdfs_gets_its_own_questions_and_an_evaluation(tmp_path: Path) -> None:
    workdir = tmp_path / "project"
    workdir.mkdir()
    for name in ("dvc.yaml", "stages", "simrag"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, workdir / name)
    corpus = workdir / "data" / "raw" / "corpus" / "mydocs"
    corpus.mkdir(parents=True)
    _corpus(corpus)
    (workdir / "data" / "raw" / "eval").mkdir(parents=True)  # the shipped sets' folder, a dependency of evaluate
    (workdir / "data" / "evalsets").mkdir(parents=True)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["prepare"].update(corpus_dir="data/raw/corpus/mydocs", workers=1, chunk_tokens=64, chunk_overlap=8)
    params["evalsets"] = {"mydocs": {"share": 0.5, "min_chunk_tokens": 16, "target_pairs": 0, "min_context_score": 0.3}}
    params["generation"].update(max_new_tokens=24, batch_size=8)
    params["evaluate"].update(
        models={"baseline": {"weights": "data/models/base", "index": "data/index"}},
        sets={"mydocs": "data/evalsets/mydocs.jsonl"},
        pooled={},
        bootstrap_samples=200,
    )
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    _dvc(workdir, "init", "--no-scm", "-q")
    _dvc(workdir, "config", "core.analytics", "false")
    _dvc(workdir, "repro", "evaluate@baseline")

    prepare = json.loads((workdir / "metrics" / "prepare.json").read_text())
    assert prepare["documents"] == 10 and prepare["skipped"]["encrypted"] == 1
    questions = list(read_jsonl(workdir / "data" / "evalsets" / "mydocs.jsonl"))
    assert questions, "no question kept"
    chunks = list(read_jsonl(workdir / "data" / "processed" / "chunks.jsonl"))
    held_out = {c["id"] for c in held_out_chunks(chunks, "mydocs", 0.5)}
    assert {q["chunk_id"] for q in questions} <= held_out
    assert not held_out & {c["id"] for c in stage2_chunks(chunks, {"mydocs": 0.5})}  # what the rounds may draw
    scored = json.loads((workdir / "metrics" / "eval" / "baseline" / "mydocs.json").read_text())
    assert scored["n"] == len(questions)
    assert "token_f1" in json.dumps(scored) and "recall_at_k" in json.dumps(scored)
    assert (workdir / "reports" / "evalset_samples_mydocs.md").is_file()
