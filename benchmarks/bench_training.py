"""Training speed and peak memory of each training stage, as params.yaml sets it, against a plain LoRA step.

    python benchmarks/bench_training.py [--updates 4] [--params params.yaml] [--set train.micro_batch_tokens=1024]

plain:  PEFT LoRA (r=16, alpha=32, dropout 0.05, all projections) on the fp32 model, a fixed batch of
        8 x 256 random tokens, the loss over every position (what a hand-written loop does).
stage1: `train_adapter` on the Alpaca records with the `train` block's batch, accumulation and max_len
        (bf16 autocast where the CPU has it, the output head on answer tokens only, LoRA dropout keeping
        a boolean mask), `--updates` optimizer updates; tokens/s counts real (non-padding) tokens.
stage2: the same on round r1's kept pairs (data/qa/r1.jsonl, as RAG prompts with stage2.max_context_tokens
        of context) with the round's own batch and learning rate; skipped until `generate_qa@r1` has run.

`--set key=value` (repeatable) changes a param for this run, as `dvc exp run -S` would; the first `--updates 14`
of Stage 1 are one cycle of its length-grouped order, from its longest sequences to its shortest.

Each side runs in a fresh process with the environment its DVC stage gives it (the `env` settings of its
command in dvc.yaml), so the peak resident memory printed is that stage's own. Targets: every stage within
6 GB, and at least 1.5x the plain step's tokens/s. Run it on a quiet machine; `make bench` does.
"""

import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import yaml

ROOT = Path(__file__).resolve().parent.parent


def stage_env(stage: str) -> dict[str, str]:
    """The `env NAME=value` settings that open the stage's command in dvc.yaml."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]
    cmd = (spec.get("do") or spec)["cmd"]
    words = shlex.split(cmd.replace("${launch.train}", "python"))
    settings = {}
    if words and words[0] == "env":
        for word in words[1:]:
            if "=" not in word:
                break
            name, value = word.split("=", 1)
            settings[name] = value
    return settings


def with_overrides(params_path: Path, overrides: tuple[str, ...]) -> dict:
    """The params of `params_path` with each `dotted.key=value` set (the value read as YAML)."""
    params = yaml.safe_load(params_path.read_text())
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep:
            raise click.BadParameter(f"{override!r}: expected key=value, e.g. train.micro_batch_tokens=1024")
        *blocks, last = key.split(".")
        node = params
        for block in blocks:
            if not isinstance(node.get(block), dict):
                raise click.BadParameter(f"{override!r}: params.yaml has no block {block!r}")
            node = node[block]
        node[last] = yaml.safe_load(value)
    return params


def plain(base: Path, steps: int) -> dict:
    import torch
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
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"tokens_per_second": batch.numel() / (sum(seconds) / len(seconds)), "peak_memory_mb": peak}


def stage_run(stage: str, params_path: Path, base: Path, updates: int, eval_steps: int) -> dict:
    from simrag.config import load_params
    from simrag.instructions import load_instructions, split_validation
    from simrag.models import load_tokenizer
    from simrag.records import read_round
    from simrag.round_data import qa_conversations
    from simrag.training import TrainSetup, train_adapter

    params = load_params(params_path)
    if stage == "stage1":
        records, _ = load_instructions(params.stage1.data, params.stage1.max_examples, params.train.seed)
        data, val = split_validation(records, params.stage1.val_size)
        train = params.train
    else:
        _, settings = params.round_settings("r1")
        kept = [r for r in read_round(ROOT / "data" / "qa", "r1") if r.get("verdict") == "kept"]
        data = qa_conversations(kept, load_tokenizer(base), settings.max_context_tokens)
        data, val = data[settings.val_size :], data[: settings.val_size]
        train = settings.train_params(params.train)
    # eval_steps 0: no validation pass (the stage makes one every train.eval_steps updates, and one before)
    val = val if eval_steps else []
    train = train.model_copy(update={"max_steps": updates, "save_steps": 10_000, "eval_steps": eval_steps or 10_000})
    setup = TrainSetup(lora=params.lora, train=train, epochs=1, model=params.model)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        figures = train_adapter(base, data, val, setup, root / "out", root / "ckpt", root / "plots")
    figures["batch"] = f"{train.batch_size} x {train.grad_accum} accumulated, max_len {train.max_len}"
    if train.micro_batch_tokens:
        figures["batch"] += f", steps of up to {train.micro_batch_tokens} tokens"
    return figures


def child(side: str, params_path: Path, base: Path, updates: int, eval_steps: int) -> dict:
    """Run one side in a fresh process with its stage's environment; its figures as a dict."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if side != "plain":
        env.update(stage_env("train_stage1" if side == "stage1" else "train_stage2"))
    args = [sys.executable, __file__, "--child", side, "--params", str(params_path), "--base", str(base)]
    args += ["--updates", str(updates), "--eval-steps", str(eval_steps)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise click.ClickException(f"{side} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@click.command()
@click.option("--params", "params_path", type=click.Path(path_type=Path), default=ROOT / "params.yaml")
@click.option("--base", type=click.Path(path_type=Path), default=ROOT / "data" / "models" / "base")
@click.option("--updates", type=int, default=4, help="optimizer updates of each stage's run")
@click.option("--eval-steps", type=int, default=0, help="updates between validation passes; 0: none (speed alone)")
@click.option("--plain-steps", type=int, default=3)
@click.option("--set", "overrides", multiple=True, help="a param for this run, e.g. train.micro_batch_tokens=1024")
@click.option("--child", "side", type=click.Choice(["plain", "stage1", "stage2"]), default=None, hidden=True)
def main(
    params_path: Path,
    base: Path,
    updates: int,
    eval_steps: int,
    plain_steps: int,
    overrides: tuple[str, ...],
    side: str | None,
) -> None:
    if overrides:
        with tempfile.TemporaryDirectory() as tmp:
            changed = Path(tmp) / "params.yaml"
            changed.write_text(yaml.safe_dump(with_overrides(params_path, overrides)))
            main.callback(changed, base, updates, eval_steps, plain_steps, (), side)  # type: ignore[misc]
        return
    if side == "plain":
        print(json.dumps(plain(base, plain_steps)))
        return
    if side:
        print(json.dumps(stage_run(side, params_path, base, updates, eval_steps), default=str))
        return
    from simrag.machine import describe

    print(f"machine: {describe()}")
    reference = child("plain", params_path, base, plain_steps, 0)
    print(
        f"plain fp32 LoRA, 8x256 tokens: {reference['tokens_per_second']:.1f} tokens/s, "
        f"peak RSS {reference['peak_memory_mb']:.0f} MB",
        flush=True,
    )
    for stage in ("stage1", "stage2"):
        if stage == "stage2" and not (ROOT / "data" / "qa" / "r1.jsonl").is_file():
            print("stage2: skipped (no data/qa/r1.jsonl: run `dvc repro generate_qa@r1` first)")
            continue
        figures = child(stage, params_path, base, updates, eval_steps)
        speed = figures["tokens_per_second"]
        print(
            f"{stage} ({figures['precision']}, {figures['batch']}), {figures['steps']} updates, "
            f"{figures['tokens']} tokens: {speed:.1f} tokens/s ({speed / reference['tokens_per_second']:.2f}x plain, "
            f"target 1.5x), peak RSS {figures['peak_memory_mb']:.0f} MB (target 6,144)",
            flush=True,
        )


if __name__ == "__main__":
    main()
