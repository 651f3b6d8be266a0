"""`simrag export`: the adapted model as a standalone transformers folder with its model card."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from simrag.cli import main
from simrag.config import ModelParams
from tests.conftest import ROOT

PROMPTS = ["What does the build cache reuse?", "How do I list the pods of a namespace?"]


def _project(tmp_path: Path, tiny_model_dir: Path, tiny_adapter_dir: Path) -> Path:
    """A project folder with the tiny base, its adapter as stage2_r1 (from stage1 = the same adapter), and
    the metrics a run leaves."""
    root = tmp_path / "project"
    shutil.copytree(tiny_model_dir, root / "data" / "models" / "base")
    for name in ("stage1", "stage2_r1"):
        shutil.copytree(tiny_adapter_dir, root / "data" / "models" / name)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["rounds"] = {"r1": {"from": "stage1", "index": "data/index"}}
    params["evaluate"]["models"] = {
        "baseline": {"weights": "data/models/base", "index": "data/index"},
        "stage2_r1": {"weights": "data/models/stage2_r1", "index": "data/index"},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    metrics = root / "metrics"
    (metrics / "eval" / "stage2_r1").mkdir(parents=True)
    (metrics / "generate_qa").mkdir()
    (metrics / "train_stage1.json").write_text(json.dumps({"steps": 60, "examples": {"train": 949}}))
    (metrics / "generate_qa" / "r1.json").write_text(json.dumps({"kept": 301, "candidates": 2500, "chunks": 1100}))
    cell = {"mean": 0.25, "ci_low": 0.2, "ci_high": 0.3}
    (metrics / "eval" / "stage2_r1" / "devops_dev.json").write_text(json.dumps({"n": 120, "token_f1": cell}))
    return root


def _greedy(model, tokenizer) -> list[list[int]]:
    import torch

    out = []
    for prompt in PROMPTS:
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )["input_ids"]
        with torch.no_grad():
            out.append(model.generate(ids, max_new_tokens=8, do_sample=False)[0, ids.shape[1] :].tolist())
    return out


def test_export_writes_a_merged_model_plain_transformers_loads(tmp_path, tiny_model_dir, tiny_adapter_dir, monkeypatch):
    root = _project(tmp_path, tiny_model_dir, tiny_adapter_dir)
    monkeypatch.chdir(root)
    result = CliRunner().invoke(main, ["export", "stage2_r1", "exported"])
    assert result.exit_code == 0, result.output
    out = root / "exported"
    assert {"config.json", "model.safetensors", "generation_config.json", "README.md", "tokenizer.json"} <= {
        p.name for p in out.iterdir()
    }
    card = (out / "README.md").read_text()
    assert "stage1" in card and "stage2_r1" in card and "301 of 2500 synthetic QA pairs" in card
    assert "| devops_dev | 120 | 0.250 [0.200, 0.300]" in card

    # the merged folder answers as the base with its adapter, greedily token for token
    from simrag.models import load_generator

    reference = load_generator(
        root / "data/models/base",
        root / "data/models/stage2_r1",
        ModelParams(device="cpu", dtype="fp32", load_in_4bit="false"),
    )
    expected = _greedy(reference.model, reference.tokenizer)
    untuned = load_generator(
        root / "data/models/base", None, ModelParams(device="cpu", dtype="fp32", load_in_4bit="false")
    )
    assert _greedy(untuned.model, untuned.tokenizer) != expected  # the adapter changes the answers
    # plain transformers in a fresh interpreter, nothing of simrag imported
    script = (
        "import json, sys, torch\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"t = AutoTokenizer.from_pretrained({str(out)!r}); m = AutoModelForCausalLM.from_pretrained({str(out)!r})\n"
        "out = []\n"
        f"for p in {PROMPTS!r}:\n"
        "    ids = t.apply_chat_template([{'role': 'user', 'content': p}], add_generation_prompt=True,"
        " return_tensors='pt', return_dict=True)['input_ids']\n"
        "    out.append(m.generate(ids, max_new_tokens=8, do_sample=False)[0, ids.shape[1]:].tolist())\n"
        "assert 'simrag' not in sys.modules\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == expected


def test_export_refuses_an_unknown_model_or_a_used_folder(tmp_path, tiny_model_dir, tiny_adapter_dir, monkeypatch):
    root = _project(tmp_path, tiny_model_dir, tiny_adapter_dir)
    monkeypatch.chdir(root)
    unknown = CliRunner().invoke(main, ["export", "stage9", "out"])
    assert unknown.exit_code == 1 and "unknown model 'stage9'" in unknown.output
    (root / "used").mkdir()
    (root / "used" / "keep.txt").write_text("mine")
    used = CliRunner().invoke(main, ["export", "baseline", "used"])
    assert used.exit_code == 1 and "not empty" in used.output
    assert (root / "used" / "keep.txt").read_text() == "mine"
    baseline = CliRunner().invoke(main, ["export", "baseline", "base-copy"])
    assert baseline.exit_code == 0, baseline.output
    assert "The base model itself, untuned" in (root / "base-copy" / "README.md").read_text()


def test_export_gguf_answers_as_the_merged_model(tmp_path, tiny_model_dir, tiny_adapter_dir, monkeypatch):
    """The GGUF file, read back (transformers' GGUF loader, llama.cpp's layout), gives the merged model's
    greedy answers and carries its tokenizer and chat template."""
    import gguf
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = _project(tmp_path, tiny_model_dir, tiny_adapter_dir)
    monkeypatch.chdir(root)
    result = CliRunner().invoke(main, ["export", "stage2_r1", "exported", "--gguf", "f32"])
    assert result.exit_code == 0, result.output
    out = root / "exported"
    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(out)
    back = AutoModelForCausalLM.from_pretrained(out, gguf_file="stage2_r1.gguf", dtype=torch.float32)
    assert _greedy(back, tokenizer) == _greedy(merged, tokenizer)
    gguf_tokenizer = AutoTokenizer.from_pretrained(out, gguf_file="stage2_r1.gguf")
    assert [gguf_tokenizer(p).input_ids for p in PROMPTS] == [tokenizer(p).input_ids for p in PROMPTS]
    fields = gguf.GGUFReader(str(out / "stage2_r1.gguf")).fields
    assert fields["general.architecture"].contents() == "llama"
    assert fields["tokenizer.chat_template"].contents() == tokenizer.chat_template
    assert fields["tokenizer.ggml.pre"].contents() == "smollm"  # the packaged SmolLM2 vocabulary

    f16 = CliRunner().invoke(main, ["export", "stage2_r1", "half", "--gguf", "f16"])
    assert f16.exit_code == 0, f16.output
    assert (root / "half" / "stage2_r1.gguf").stat().st_size < (out / "stage2_r1.gguf").stat().st_size


def test_export_gguf_refuses_an_architecture_it_cannot_write(tmp_path):
    from simrag.errors import DataError
    from simrag.gguf_export import write_gguf

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(DataError, match=r"Llama-architecture .* convert_hf_to_gguf\.py"):
        write_gguf(tmp_path, tmp_path / "m.gguf")
    assert not (tmp_path / "m.gguf").exists()
