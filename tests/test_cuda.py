"""The CUDA paths, on the tiny random Llama: QLoRA training (4-bit NF4 base, bf16 compute, gradient
checkpointing), the 4-bit generator with its adapter kept unmerged, bf16 training against the CPU's
fp32, batched generation, and the Stage 1 script. Skipped where no CUDA device is present (CI)."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from simrag.config import LoraParams, ModelParams
from simrag.generation import generate
from simrag.jsonio import read_json
from simrag.models import load_generator
from simrag.prompting import render
from simrag.training import TrainSetup, train_adapter
from tests.test_training import CONVERSATIONS, run_train_stage1_script, setup

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def cuda_setup(load_in_4bit: str = "auto", dropout: float = 0.05, **train: object) -> TrainSetup:
    """test_training's tiny run (lr 1e-2, batch 2, 6 updates here) on CUDA, 4-bit unless "false"."""
    cuda = ModelParams(device="cuda", load_in_4bit=load_in_4bit)  # type: ignore[arg-type]
    return replace(setup(**{"max_steps": 6, **train}), lora=LoraParams(dropout=dropout), model=cuda)


def _train(model_dir: Path, tmp_path: Path, setup: TrainSetup, name: str) -> tuple[dict, Path]:
    out = tmp_path / name
    figures = train_adapter(
        model_dir, CONVERSATIONS, CONVERSATIONS[:2], setup, out, tmp_path / f"{name}-ckpt", tmp_path / f"{name}-plots"
    )
    return figures, out


def _logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids.to(model.device)).logits.float().cpu()


@pytest.fixture(scope="module")
def qlora_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figures, out = _train(tiny_model_dir, tmp_path_factory.mktemp("qlora"), cuda_setup(), "adapter")
    return figures, out, [str(w.message) for w in caught]


def test_qlora_trains_a_4bit_base_with_checkpointing_and_lowers_the_loss(
    qlora_run: tuple[dict, Path, list[str]],
) -> None:
    figures, out, caught = qlora_run
    assert not [message for message in caught if "use_reentrant" in message]  # non-reentrant checkpoints
    assert figures["device"] == "cuda"
    assert figures["precision"] == f"4-bit NF4 + {'bfloat16' if torch.cuda.is_bf16_supported() else 'float16'}"
    assert figures["gradient_checkpointing"] is True  # auto: on with 4-bit
    assert figures["memory_kind"] == "cuda_max_allocated" and figures["peak_memory_mb"] > 0
    assert figures["steps"] == 6
    assert figures["train_loss_final"] < figures["train_loss_first"]
    assert figures["val_loss_final"] < figures["val_loss_initial"]
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["target_modules"] == sorted(config["target_modules"])  # the same folder every run


def test_the_4bit_generator_applies_the_adapter_unmerged_as_the_cpu_merges_it(
    tiny_model_dir: Path, qlora_run: tuple[dict, Path, list[str]]
) -> None:
    _, adapter, _ = qlora_run
    quantized = load_generator(tiny_model_dir, adapter, ModelParams(device="cuda"))
    assert hasattr(quantized.model, "peft_config")  # unmerged: a merge would be quantised again
    assert quantized.model.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight.dtype == torch.uint8
    quantized_base = load_generator(tiny_model_dir, None, ModelParams(device="cuda"))
    cpu = ModelParams(device="cpu", dtype="fp32")
    merged, base = load_generator(tiny_model_dir, adapter, cpu), load_generator(tiny_model_dir, None, cpu)

    ids = merged.tokenizer(render(merged.tokenizer, [{"role": "user", "content": "What is DVC?"}]), return_tensors="pt")
    ids = ids["input_ids"]
    # what the adapter changes, on the 4-bit base (bf16) and on the exact fp32 base: the same change
    on_4bit = (_logits(quantized.model, ids) - _logits(quantized_base.model, ids)).flatten()
    on_fp32 = (_logits(merged.model, ids) - _logits(base.model, ids)).flatten()
    assert on_fp32.norm() > 1.0  # the adapter learned something to compare
    assert torch.nn.functional.cosine_similarity(on_4bit, on_fp32, dim=0) > 0.9

    answers = generate(quantized, [render(quantized.tokenizer, [{"role": "user", "content": "Say hello."}])], 8)
    assert 1 <= answers[0].n_tokens <= 8


def test_bf16_training_on_cuda_computes_the_cpu_fp32_loss_and_gradient(tiny_model_dir: Path, tmp_path: Path) -> None:
    one_step = {"max_steps": 1, "eval_steps": 1, "learning_rate": 1e-3}
    cuda_figures, cuda_out = _train(tiny_model_dir, tmp_path, cuda_setup("false", dropout=0.0, **one_step), "cuda")
    cpu_setup = replace(cuda_setup("false", dropout=0.0, **one_step), model=ModelParams(device="cpu"))
    cpu_figures, cpu_out = _train(tiny_model_dir, tmp_path, cpu_setup, "cpu")
    assert cuda_figures["precision"] in ("bfloat16", "float16") and cuda_figures["device"] == "cuda"
    assert cuda_figures["train_loss_first"] == pytest.approx(cpu_figures["train_loss_first"], rel=1e-2)
    assert cuda_figures["val_loss_initial"] == pytest.approx(cpu_figures["val_loss_initial"], rel=1e-2)

    def grad_norm(out: Path) -> float:
        rows = (out.parent / f"{out.name}-plots" / "plots" / "metrics" / "grad_norm.tsv").read_text().splitlines()
        return float(rows[1].split("\t")[1])

    assert grad_norm(cuda_out) == pytest.approx(grad_norm(cpu_out), rel=5e-2)


def test_batched_generation_on_cuda_matches_one_by_one(tiny_model_dir: Path) -> None:
    generator = load_generator(tiny_model_dir, params=ModelParams(device="cuda", dtype="fp32", load_in_4bit="false"))
    assert generator.device == "cuda" and generator.model.device.type == "cuda"
    questions = ["What is Docker?", "Explain how continuous integration runs tests on every push.", "Why?"]
    prompts = [render(generator.tokenizer, [{"role": "user", "content": q}]) for q in questions]
    batched = generate(generator, prompts, max_new_tokens=12, batch_size=3)
    single = [generate(generator, [p], max_new_tokens=12, batch_size=1)[0] for p in prompts]
    assert [g.text for g in batched] == [g.text for g in single]


def test_train_stage1_script_runs_qlora_on_cuda(tiny_model_dir: Path, tmp_path: Path) -> None:
    result, out, metrics = run_train_stage1_script(tiny_model_dir, tmp_path, {"device": "cuda"})
    assert result.exit_code == 0, result.output
    figures = read_json(metrics)
    assert figures["device"] == "cuda" and figures["precision"].startswith("4-bit NF4")
    assert figures["memory_kind"] == "cuda_max_allocated" and figures["steps"] == 2
    assert (out / "adapter_model.safetensors").is_file()
