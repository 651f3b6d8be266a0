"""Inference latency of a LoRA fine-tuned model: merged into the base vs. kept as an adapter.

    python benchmarks/bench_merge.py [--base data/models/base]

A random LoRA adapter (r=16, alpha=32, all attention and MLP projections) stands for a trained
one. Target (issue: generator and evaluate): merged / base latency at most 1.05. The paper
measured +52% with unmerged adapters. A second, independent load of the base model is timed as a
control: its ratio to the first shows how much of a difference this machine can resolve.
"""

import statistics
import tempfile
import time
from pathlib import Path

import click
import torch

from simrag.config import ModelParams
from simrag.machine import describe
from simrag.models import load_generator
from simrag.prompting import render

PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _seconds(model, inputs, new_tokens: int) -> float:
    started = time.perf_counter()
    with torch.inference_mode():
        model.generate(**inputs, min_new_tokens=new_tokens, max_new_tokens=new_tokens, do_sample=False)
    return time.perf_counter() - started


def _ratios(models: dict, inputs, new_tokens: int, repeats: int) -> dict[str, list[float]]:
    """Each model's latency over the first one's, per round: the models take turns, so that drifts
    of the machine hit all of them alike within a round."""
    ratios: dict[str, list[float]] = {name: [] for name in models}
    for round_ in range(repeats + 1):
        seconds = {name: _seconds(model, inputs, new_tokens) for name, model in models.items()}
        if round_:  # the first round warms up
            reference = next(iter(seconds.values()))
            for name, value in seconds.items():
                ratios[name].append(value / reference)
    return ratios


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], statistics.median(values), q[2]


@click.command()
@click.option("--base", type=click.Path(path_type=Path), default="data/models/base")
@click.option("--new-tokens", type=int, default=32)
@click.option("--repeats", type=int, default=15)
def main(base: Path, new_tokens: int, repeats: int) -> None:
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    with tempfile.TemporaryDirectory() as adapter:
        torch.manual_seed(0)
        config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, init_lora_weights=False, target_modules=PROJECTIONS)
        peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), config)
        with torch.no_grad():  # B at the scale training reaches (random LoRA init is far larger)
            for name, param in peft_model.named_parameters():
                if "lora_B" in name:
                    param.normal_(0.0, 0.002)
        peft_model.save_pretrained(adapter)
        plain = load_generator(base, params=ModelParams(device="cpu"))
        control = load_generator(base, params=ModelParams(device="cpu"))
        merged = load_generator(base, Path(adapter), params=ModelParams(device="cpu"))
        dtype = next(plain.model.parameters()).dtype
        unmerged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=dtype), adapter).eval()
        prompt = render(plain.tokenizer, [{"role": "user", "content": "Explain what a Docker image layer is. " * 8}])
        inputs = plain.tokenizer([prompt] * 4, return_tensors="pt", add_special_tokens=False, padding=True)
        kwargs = {"pad_token_id": plain.tokenizer.pad_token_id}
        models = {"base": plain.model, "base again": control.model, "merged": merged.model, "unmerged": unmerged}
        for model in models.values():
            model.generation_config.update(**kwargs)
        ratios = _ratios(models, inputs, new_tokens, repeats)
    print(f"machine: {describe()}, {torch.get_num_threads()} threads; {base} in {dtype}")
    print(f"batch 4, {new_tokens} new tokens; latency / base's in the same round, {repeats} rounds:")
    for name, values in ratios.items():
        if name != "base":
            low, median, high = _quartiles(values)
            print(f"  {name:10s} median {median:.3f}  (quartiles {low:.3f}-{high:.3f})")


if __name__ == "__main__":
    main()
