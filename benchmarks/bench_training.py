"""Training throughput: simrag's LoRA training vs. a plain fp32 LoRA step.

    python benchmarks/bench_training.py [--base data/models/base] [--updates 4]

plain:  PEFT LoRA (r=16, alpha=32, dropout 0.05, all projections) on the fp32 model, a fixed batch of
        8 x 256 random tokens, the loss over every position (what a hand-written loop does).
simrag: `train_adapter` on the first Alpaca records (length-grouped batches of 8, gradient
        accumulation 2, bf16 autocast where the CPU has it, the output head on answer tokens only,
        16-bit-draw LoRA dropout), `--updates` optimizer updates; tokens/s counts real (non-padding) tokens.
Target (issue: train_stage1): simrag at least 1.5x plain. Run it on a quiet machine, as the training
stages run (`make bench` does), with glibc told to keep freed memory for reuse:

    MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=17179869184 python benchmarks/bench_training.py

Both sides then run faster; without those variables, compare with the plain figure of a default run.
"""

import tempfile
import time
from pathlib import Path

import click
import torch

from simrag.config import LoraParams, TrainParams
from simrag.instructions import load_instructions
from simrag.machine import describe
from simrag.training import TrainSetup, train_adapter


def plain_tokens_per_second(base: Path, steps: int) -> float:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    model = get_peft_model(model, config).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-5)
    batch = torch.randint(100, model.config.vocab_size - 100, (8, 256), generator=torch.Generator().manual_seed(0))
    seconds = []
    for step in range(steps + 1):
        started = time.perf_counter()
        model(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step:  # the first step warms up
            seconds.append(time.perf_counter() - started)
    return batch.numel() / (sum(seconds) / len(seconds))


@click.command()
@click.option("--base", type=click.Path(path_type=Path), default="data/models/base")
@click.option("--data", default="data/raw/instructions/alpaca_en_1k.json")
@click.option("--updates", type=int, default=4, help="optimizer updates of the simrag run")
@click.option("--plain-steps", type=int, default=3)
def main(base: Path, data: str, updates: int, plain_steps: int) -> None:
    print(f"machine: {describe()}, torch {torch.__version__}")
    plain = plain_tokens_per_second(base, plain_steps)
    print(f"plain fp32 LoRA, 8x256 tokens: {plain:.1f} tokens/s", flush=True)
    conversations, _ = load_instructions([data], max_examples=0, seed=0)
    setup = TrainSetup(lora=LoraParams(), train=TrainParams(max_steps=updates), epochs=1, device="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        figures = train_adapter(base, conversations, [], setup, root / "out", root / "ckpt", root / "plots")
    ours = figures["tokens_per_second"]
    print(
        f"simrag ({figures['precision']}), {updates} updates, {figures['tokens']} tokens: {ours:.1f} tokens/s, "
        f"peak RSS {figures['peak_memory_mb']:.0f} MB"
    )
    print(f"speed-up: {ours / plain:.2f}x (target 1.5x)")


if __name__ == "__main__":
    main()
