"""LoRA training on the tiny random Llama with SmolLM2's real tokenizer and chat template."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from simrag.config import LoraParams, ModelParams, TrainParams
from simrag.errors import DataError
from simrag.instructions import Conversation, load_instructions, split_validation
from simrag.jsonio import read_json
from simrag.models import load_generator, load_tokenizer
from simrag.sft_data import IGNORE, PadCollator, encode, encode_all
from simrag.training import TrainSetup, assistant_loss, train_adapter

CONVERSATIONS = [
    Conversation("What is DVC?", "A tool that versions data and runs pipelines."),
    Conversation("Name a vector database.", "ChromaDB stores embeddings."),
    Conversation("What does LoRA train?", "Two small matrices per projection."),
    Conversation("Say hello.", "Hello!"),
]


def setup(**train: object) -> TrainSetup:
    defaults: dict[str, object] = {
        "learning_rate": 1e-2,
        "batch_size": 2,
        "grad_accum": 1,
        "max_len": 128,
        "warmup_ratio": 0.0,
        "max_steps": 4,
        "eval_steps": 2,
        "save_steps": 2,
        "scheduler": "constant_with_warmup",
    }
    return TrainSetup(
        lora=LoraParams(), train=TrainParams(**{**defaults, **train}), epochs=1, model=ModelParams(device="cpu")
    )


def test_loss_mask_covers_only_the_assistant_turn(tiny_model_dir: Path) -> None:
    tokenizer = load_tokenizer(tiny_model_dir)
    conversation = Conversation("What is DVC?", "It versions data.")
    example, status = encode(conversation, tokenizer, max_len=512)
    assert status == "ok" and example is not None
    learned = [t for t, label in zip(example["input_ids"], example["labels"], strict=True) if label != IGNORE]
    assert [label for label in example["labels"] if label != IGNORE] == learned
    # the answer and the end of the turn, nothing of the system prompt or the question
    assert tokenizer.decode(learned).strip() == "It versions data.<|im_end|>"
    first_learned = example["labels"].index(learned[0])
    assert all(label == IGNORE for label in example["labels"][:first_learned])
    assert "What is DVC?" in tokenizer.decode(example["input_ids"][:first_learned])


def test_overlong_conversations_are_truncated_or_dropped_and_counted(tiny_model_dir: Path) -> None:
    tokenizer = load_tokenizer(tiny_model_dir)
    long_answer = Conversation("Short question?", "word " * 200)
    long_question = Conversation("word " * 200, "Short answer.")
    examples, counts = encode_all([long_answer, long_question, CONVERSATIONS[0]], tokenizer, max_len=64)
    assert counts == {"truncated": 1, "too_long": 1, "ok": 1}
    assert len(examples) == 2
    assert all(len(e["input_ids"]) <= 64 for e in examples)


def test_collator_pads_right_and_masks_padding() -> None:
    batch = PadCollator(pad_id=0)(
        [{"input_ids": [5, 6, 7], "labels": [IGNORE, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE, 6, 7], [8, IGNORE, IGNORE]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


def test_token_micro_batches_hold_every_row_once_longest_first_within_the_budget() -> None:
    from simrag.sft_data import token_micro_batches

    lengths = [3, 7, 2, 5, 1, 9]
    rows = [{"input_ids": list(range(10, 10 + n)), "labels": [IGNORE, *range(11, 10 + n)]} for n in lengths]
    batch = PadCollator(pad_id=0)(rows)
    parts = token_micro_batches(batch, max_tokens=10)
    # 9 alone (over half the budget), 7 alone, 5 with 3 (2 x 5), then 2 and 1 (3 x 5 would not fit)
    assert [p["attention_mask"].sum(dim=1).tolist() for p in parts] == [[9], [7], [5, 3], [2, 1]]
    for part in parts:
        assert part["input_ids"].shape[1] == int(part["attention_mask"].sum(dim=1).max())  # cut to its longest
        assert part["input_ids"].numel() <= 10 or len(part["input_ids"]) == 1
        for ids, labels, mask in zip(part["input_ids"], part["labels"], part["attention_mask"], strict=True):
            n = int(mask.sum())
            assert ids[:n].tolist() == list(range(10, 10 + n))  # each row whole, as the collator made it
            assert labels[:n].tolist() == rows[lengths.index(n)]["labels"]
    assert sorted(len(p["input_ids"]) for p in parts) == [1, 1, 2, 2]
    assert len(token_micro_batches(batch, max_tokens=10_000)) == 1  # all fit: one step


def test_micro_batches_by_tokens_make_the_same_updates_as_fixed_micro_batches(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    # One update of 4 sequences, three ways: a batch of 4; 4 accumulated batches of 1; split by a 40-token
    # budget. The loss is the token mean over the update's answer tokens each way, so the adapters agree.
    conversations = [*CONVERSATIONS, Conversation("word " * 20, "A longer question, a short answer.")]

    def adapter(**train: object) -> dict[str, torch.Tensor]:
        run = setup(learning_rate=1e-3, max_steps=2, eval_steps=10, save_steps=10, **train)
        run = TrainSetup(
            lora=LoraParams(dropout=0.0), train=run.train, epochs=1, model=ModelParams(device="cpu", dtype="fp32")
        )
        folder = tmp_path / "-".join(f"{k}{v}" for k, v in train.items())
        out = folder / "adapter"
        figures = train_adapter(tiny_model_dir, conversations, [], run, out, folder / "ckpt", folder / "plots")
        assert figures["steps"] == 2
        from safetensors.torch import load_file

        curves[str(train)] = [
            float(row.split("\t")[1])
            for name in ("loss", "grad_norm")
            for row in (folder / "plots" / "plots" / "metrics" / f"{name}.tsv").read_text().splitlines()[1:]
        ]
        return load_file(out / "adapter_model.safetensors")

    curves: dict[str, list[float]] = {}

    whole = adapter(batch_size=4, grad_accum=1, micro_batch_tokens=0)
    accumulated = adapter(batch_size=1, grad_accum=4, micro_batch_tokens=0)
    by_tokens = adapter(batch_size=2, grad_accum=2, micro_batch_tokens=40)
    first, *others = curves.values()  # the loss and the gradient norm of each update
    assert all(other == pytest.approx(first, rel=1e-5) for other in others)
    moved = [name for name, value in whole.items() if "lora_B" in name and value.abs().max() > 1e-4]
    assert moved  # the updates changed the adapter
    for name, value in whole.items():
        # Adam's early steps are ~lr x the gradient's sign: the float rounding of a tiny gradient can move
        # a weight by a fraction of a step (up to 0.3% of lr seen), never by a step
        assert torch.allclose(accumulated[name], value, atol=1e-5), name
        assert torch.allclose(by_tokens[name], value, atol=1e-5), name


def test_assistant_loss_equals_the_full_forward_loss(tiny_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    rows, _ = encode_all(CONVERSATIONS[:3], tokenizer, 128)
    batch = PadCollator(tokenizer.pad_token_id)(rows)
    with torch.no_grad():
        ours = assistant_loss(model, batch)
        reference = model(**batch).loss  # transformers: logits at every position, mean over labelled ones
    assert ours.item() == pytest.approx(reference.item(), rel=1e-5)


def test_training_lowers_the_loss_and_the_adapter_merges_to_the_same_logits(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "adapter"
    figures = train_adapter(
        tiny_model_dir, CONVERSATIONS, CONVERSATIONS[:2], setup(max_steps=6), out, tmp_path / "ckpt", tmp_path / "plots"
    )
    assert figures["steps"] == 6
    assert figures["train_loss_final"] < figures["train_loss_first"]
    assert figures["val_loss_final"] < figures["val_loss_initial"]
    assert figures["tokens"] > 0 and figures["tokens_per_second"] > 0
    assert 0 < figures["trainable_share"] < 1 and figures["adapter_mb"] > 0
    assert not (tmp_path / "ckpt").exists()  # checkpoints go once the run has ended
    # the curves, in dvclive's layout, and as a picture
    loss_rows = (tmp_path / "plots" / "plots" / "metrics" / "loss.tsv").read_text().splitlines()
    assert loss_rows[0].split("\t")[:2] == ["step", "loss"] and len(loss_rows) == 7
    val_rows = (tmp_path / "plots" / "plots" / "metrics" / "val_loss.tsv").read_text().splitlines()
    assert [row.split("\t")[0] for row in val_rows[1:]] == ["0", "2", "4", "6"]
    assert (tmp_path / "plots" / "curves.png").stat().st_size > 0

    # the saved adapter, merged for inference, computes what the trained PEFT model computes
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    tokenizer = load_tokenizer(tiny_model_dir)
    ids = tokenizer("What is DVC?", return_tensors="pt")["input_ids"]
    peft_model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32), str(out)
    ).eval()
    merged = load_generator(tiny_model_dir, out, params=ModelParams(device="cpu", dtype="fp32")).model
    base = load_generator(tiny_model_dir, None, params=ModelParams(device="cpu", dtype="fp32")).model
    with torch.no_grad():
        expected = peft_model(ids).logits
        assert torch.allclose(merged(ids).logits, expected, atol=1e-4)
        assert not torch.allclose(base(ids).logits, expected, atol=1e-3)


def test_an_interrupted_run_resumes_from_its_last_checkpoint(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import TrainerCallback

    class Interrupt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            if state.global_step == 3:
                raise KeyboardInterrupt

    out, ckpt, plots = tmp_path / "adapter", tmp_path / "ckpt", tmp_path / "plots"
    with pytest.raises(KeyboardInterrupt):
        train_adapter(tiny_model_dir, CONVERSATIONS, [], setup(), out, ckpt, plots, callbacks=(Interrupt(),))
    assert not out.exists()  # no half-written adapter
    assert (ckpt / "checkpoint-2").is_dir()

    figures = train_adapter(tiny_model_dir, CONVERSATIONS, [], setup(), out, ckpt, plots)
    assert figures["resumed_from_step"] == 2
    assert figures["steps"] == 4
    steps = [row.split("\t")[0] for row in (plots / "plots" / "metrics" / "loss.tsv").read_text().splitlines()[1:]]
    assert steps == ["1", "2", "3", "4"]  # the history before the checkpoint replayed, nothing twice

    # other settings make the old checkpoints stale: a fresh start
    with pytest.raises(KeyboardInterrupt):
        train_adapter(tiny_model_dir, CONVERSATIONS, [], setup(), out, ckpt, plots, callbacks=(Interrupt(),))
    figures = train_adapter(tiny_model_dir, CONVERSATIONS, [], setup(learning_rate=5e-3), out, ckpt, plots)
    assert figures["resumed_from_step"] == 0 and figures["steps"] == 4


def test_instructions_skip_incomplete_records_and_reject_bad_files(tmp_path: Path) -> None:
    records = [
        {"instruction": "Add 2 and 3.", "input": "", "output": "5"},
        {"instruction": "Translate.", "input": "bonjour", "output": "hello"},
        {"instruction": "", "input": "", "output": "no instruction"},
        {"instruction": "No output", "input": ""},
        "not a record",
    ]
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps(records))
    conversations, counts = load_instructions([str(path)])
    assert counts["records"] == 5 and counts["skipped_incomplete"] == 3 and counts["used"] == 2
    assert {c.user for c in conversations} == {"Add 2 and 3.", "Translate.\n\nbonjour"}

    lines = tmp_path / "more.jsonl"
    lines.write_text(json.dumps(records[0]) + "\n{broken\n")
    with pytest.raises(DataError, match=r"more.jsonl, line 2"):
        load_instructions([str(lines)])
    (tmp_path / "empty.json").write_text("")
    with pytest.raises(DataError, match="empty"):
        load_instructions([str(tmp_path / "empty.json")])
    (tmp_path / "dict.json").write_text("{}")
    with pytest.raises(DataError, match="JSON list"):
        load_instructions([str(tmp_path / "dict.json")])
    with pytest.raises(DataError, match="not found"):
        load_instructions([str(tmp_path / "missing.json")])
    (tmp_path / "useless.json").write_text(json.dumps(records[2:]))
    with pytest.raises(DataError, match="no usable"):
        load_instructions([str(tmp_path / "useless.json")])


def test_shuffle_cap_and_validation_slice_are_deterministic(tmp_path: Path) -> None:
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps([{"instruction": f"Task {i}", "input": "", "output": f"Done {i}"} for i in range(40)]))
    first, _ = load_instructions([str(path)], max_examples=30, seed=3)
    again, _ = load_instructions([str(path)], max_examples=30, seed=3)
    other, _ = load_instructions([str(path)], max_examples=30, seed=4)
    assert first == again and first != other and len(first) == 30
    train, val = split_validation(first, 5)
    assert len(val) == 5 and len(train) == 25 and not set(val) & set(train)
    train, val = split_validation(first[:10], 5)  # never more than a fifth held out
    assert len(val) == 2


def run_train_stage1_script(base: Path, tmp_path: Path, model: dict[str, str]) -> tuple[Any, Path, Path]:
    """`train_stage1` through its command on 12 Alpaca records (2 held out), 2 updates: (result, out, metrics)."""
    import yaml
    from click.testing import CliRunner

    from stages.train_stage1 import main

    data = tmp_path / "alpaca.json"
    data.write_text(
        json.dumps([{"instruction": c.user, "input": "", "output": c.assistant} for c in CONVERSATIONS * 3])
    )
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "model": model,
                "train": {"batch_size": 2, "max_steps": 2, "eval_steps": 1, "max_len": 128},
                "stage1": {"data": [str(data)], "val_size": 2},
            }
        )
    )
    out, metrics = tmp_path / "stage1", tmp_path / "train_stage1.json"
    args = ["--params", str(params), "--base", str(base), "--out", str(out), "--metrics", str(metrics)]
    args += ["--checkpoints", str(tmp_path / "ckpt"), "--plots", str(tmp_path / "plots")]
    return CliRunner().invoke(main, args), out, metrics


def test_train_stage1_script_writes_adapter_metrics_and_curves(tiny_model_dir: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from stages.train_stage1 import main

    result, out, metrics = run_train_stage1_script(tiny_model_dir, tmp_path, {"device": "cpu"})
    assert result.exit_code == 0, result.output
    figures = read_json(metrics)
    assert figures["examples"] == {
        "train": 10,
        "validation": 2,
        "truncated": 0,
        "dropped_too_long": 0,
        "records_read": 12,
        "skipped_incomplete": 0,
    }
    assert figures["steps"] == 2 and (out / "adapter_config.json").is_file()

    params = str(tmp_path / "params.yaml")
    missing = CliRunner().invoke(main, ["--params", params, "--base", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1 and "no model at" in missing.output


def test_fast_dropout_drops_p_and_keeps_the_expectation() -> None:
    from simrag.fast_dropout import FastDropout

    torch.manual_seed(0)
    dropout = FastDropout(0.05).train()
    x = torch.ones(200_000, requires_grad=True)
    y = dropout(x)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.05) < 0.003
    assert abs(y.mean().item() - 1.0) < 0.01  # inverted dropout keeps the expectation
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.95))
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # the gradient passes through the same mask, scaled
    assert torch.equal(dropout.eval()(x), x)
    with pytest.raises(ValueError, match="dropout probability"):
        FastDropout(1.0)


def test_fast_dropout_keeps_a_boolean_mask_and_matches_the_plain_product_under_autocast() -> None:
    from simrag.fast_dropout import FastDropout

    dropout = FastDropout(0.05).train()
    weight = torch.randn(16, 64, requires_grad=True)
    x = torch.randn(32, 64, requires_grad=True)
    saved: list[torch.Tensor] = []
    torch.manual_seed(1)
    hooks = torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t)
    with hooks, torch.autocast("cpu", dtype=torch.bfloat16):
        ours = torch.nn.functional.linear(dropout(x), weight)
    assert saved[0].dtype == torch.bool and saved[0].shape == x.shape  # the mask, at 1 byte an element
    assert not any(t.dtype == torch.float32 and t.shape == x.shape for t in saved)  # no float copy of it
    ours.sum().backward()
    ours_grads = x.grad.clone(), weight.grad.clone()
    keep = saved[0]
    x.grad = weight.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what x * mask did: the same numbers
        plain = torch.nn.functional.linear(x * (keep.float() * dropout._scale), weight)
    plain.sum().backward()
    assert torch.equal(ours, plain)
    assert torch.equal(ours_grads[0], x.grad) and torch.equal(ours_grads[1], weight.grad)


def test_cpu_training_uses_fast_lora_dropout(tiny_model_dir: Path) -> None:
    from simrag.fast_dropout import FastDropout
    from simrag.training import load_trainable

    model, _, _ = load_trainable(tiny_model_dir, setup())
    dropouts = [m for m in model.modules() if isinstance(m, FastDropout)]
    assert dropouts and all(d.p == pytest.approx(0.05, abs=1e-4) for d in dropouts)


def test_warmup_never_swallows_a_short_run() -> None:
    from simrag.config import TrainParams
    from simrag.training import planned_updates, warmup_updates

    train = TrainParams(batch_size=4, grad_accum=1, warmup_ratio=0.03)
    assert planned_updates(300, train, epochs=1) == 75
    assert warmup_updates(300, train, epochs=1) == 2  # 0.03 x 75, rounded down
    assert warmup_updates(25, train, epochs=1) == 0  # 7 updates: none lost to warmup
    assert planned_updates(300, train.model_copy(update={"grad_accum": 2}), epochs=1, processes=2) == 19
    assert planned_updates(300, train.model_copy(update={"max_steps": 9}), epochs=1) == 9
    # a last, partial update counts, as the Trainer makes it: Stage 1's 949 examples at 2 x 8 made 60
    stage1 = TrainParams(batch_size=2, grad_accum=8)
    assert planned_updates(949, stage1, epochs=1) == 60
    assert planned_updates(949, stage1.model_copy(update={"micro_batch_tokens": 1024}), epochs=1) == 60


def test_a_round_with_few_pairs_trains_more_epochs() -> None:
    from simrag.config import TrainParams
    from simrag.training import epochs_for_updates, planned_updates

    train = TrainParams(batch_size=4, grad_accum=1)
    assert epochs_for_updates(300, train, 1.0, min_updates=60) == 1.0  # 75 updates already
    epochs = epochs_for_updates(120, train, 1.0, min_updates=60)  # 30 updates an epoch
    assert epochs == 2.0 and planned_updates(120, train, epochs) == 60


def test_replay_comes_from_stage1_training_split_only(tmp_path) -> None:
    import json

    from simrag.instructions import load_instructions, split_validation, stage1_replay

    data = tmp_path / "alpaca.json"
    data.write_text(json.dumps([{"instruction": f"Say {i}.", "output": str(i)} for i in range(50)]))
    conversations, _ = load_instructions([str(data)], 0, seed=0)
    _, validation = split_validation(conversations, 10)
    replay = stage1_replay([str(data)], 0, 10, split_seed=0, n=40, seed=3)
    assert len(replay) == 40 and not {c.user for c in replay} & {c.user for c in validation}
    assert stage1_replay([str(data)], 0, 10, split_seed=0, n=0, seed=3) == []


def test_the_same_training_makes_the_same_adapter_folder_under_any_hash_seed(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Two processes with different string hashing (PYTHONHASHSEED) train the same adapter: every file of
    the folder is byte-identical, so DVC finds nothing changed downstream. PEFT alone wrote the all-linear
    target modules in set order, which differed from process to process."""
    import hashlib
    import os
    import subprocess
    import sys

    import yaml

    from tests.conftest import ROOT

    data = tmp_path / "alpaca.json"
    data.write_text(json.dumps([{"instruction": c.user, "input": "", "output": c.assistant} for c in CONVERSATIONS]))
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "model": {"device": "cpu"},
                "train": {"batch_size": 2, "max_steps": 1, "eval_steps": 10, "max_len": 64},
                "stage1": {"data": [str(data)], "val_size": 0},
            }
        )
    )
    digests = []
    for seed in ("1", "2"):
        out = tmp_path / f"adapter-{seed}"
        args = [sys.executable, str(ROOT / "stages" / "train_stage1.py"), "--params", str(params)]
        args += ["--base", str(tiny_model_dir), "--out", str(out), "--checkpoints", str(tmp_path / f"ckpt-{seed}")]
        args += ["--plots", str(tmp_path / f"plots-{seed}"), "--metrics", str(tmp_path / f"m-{seed}.json")]
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(args, env=env, capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        digests.append({p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())})
    assert digests[0] == digests[1]
    config = json.loads((tmp_path / "adapter-1" / "adapter_config.json").read_text())
    assert config["target_modules"] == sorted(config["target_modules"])


def test_a_round_trains_on_its_kept_pairs_and_a_replay_share_never_on_its_validation(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    import pytest

    from simrag.config import Stage1Params, Stage2Params
    from simrag.errors import DataError
    from simrag.models import load_tokenizer
    from simrag.round_data import round_data

    data = tmp_path / "alpaca.json"
    data.write_text(json.dumps([{"instruction": f"Say {i}.", "output": str(i)} for i in range(60)]))
    stage1 = Stage1Params(data=[str(data)], max_examples=0, val_size=10)
    records = [
        {
            "question": f"What does option {i} do?",
            "answer": f"Option {i} turns on feature {i}.",
            "context": [f"Option {i} turns on feature {i}. It is off by default."],
            "verdict": "kept" if i % 3 else "not_retrieved",
        }
        for i in range(30)
    ]
    tokenizer = load_tokenizer(tiny_model_dir)
    settings = Stage2Params(min_pairs=10, val_size=4, replay_share=0.5, max_context_tokens=64)
    first = round_data(records, "r1", settings, stage1, 0, tokenizer)
    assert (first.qa_pairs, len(first.validation), first.replay) == (16, 4, 8)  # 20 kept: 4 held out, 16 x 0.5
    assert len(first.train) == 24
    questions = lambda conversations: {c.user.rsplit("\n", 1)[-1] for c in conversations}  # noqa: E731
    assert not questions(first.validation) & questions(first.train)  # validation pairs never trained on
    assert first == round_data(records, "r1", settings, stage1, 0, tokenizer)  # deterministic
    with pytest.raises(DataError, match=r"20 of 30 synthetic QA pairs were kept, fewer than stage2\.min_pairs"):
        round_data(records, "r1", settings.model_copy(update={"min_pairs": 21}), stage1, 0, tokenizer)


def test_released_memory_goes_back_to_the_system() -> None:
    # Freed blocks scattered through the heap (every other one of many small allocations, the last one
    # held so nothing frees the top) stay resident until the heap's free pages are handed back.
    import subprocess
    import sys

    script = """
import os, sys
from simrag.machine import release_free_memory
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
blocks = [b"x" * 60_000 for _ in range(5000)]
del blocks[::2]
before = rss()
if not release_free_memory():
    sys.exit(3)
print(before - rss())
"""
    if not Path("/proc/self/statm").exists():
        pytest.skip("resident memory is read from /proc")
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=Path(__file__).parent.parent
    )
    if done.returncode == 3:
        pytest.skip("no glibc: nothing to trim")
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) > 100  # of ~145 MB freed


def test_cpu_training_releases_free_memory_after_each_update(tiny_model_dir: Path, tmp_path: Path) -> None:
    from unittest import mock

    with mock.patch("simrag.training.release_free_memory") as release:
        train_adapter(
            tiny_model_dir, CONVERSATIONS, CONVERSATIONS[:2], setup(), tmp_path / "a", tmp_path / "c", tmp_path / "p"
        )
    assert release.call_count == 4 + 3  # 4 updates, validation before and at 2 and 4
