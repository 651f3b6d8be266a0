"""LoRA / QLoRA fine-tuning of the generator on conversations, with the Hugging Face Trainer.

Shared by Stage 1 (instruction tuning) and every Stage 2 round (synthetic QA). The loss covers the
assistant's tokens only, and the output head is applied to those positions alone: on a small model
the 49K-word vocabulary projection of the prompt tokens is a large share of the work, and it is wasted.
Batches are grouped by length, so little is spent on padding. On CUDA the base is loaded in 4-bit NF4
(QLoRA); on a CPU in fp32 with bf16 autocast where the CPU has native bf16.

A run reads as setup (`_setup_run`: the model with its adapter, the encoded examples, the Trainer's
arguments, the checkpoint to resume from) -> fit (`train_adapter`) -> summary (`_summary`). The data
(`sft_data`), the checkpoints (`checkpoints`) and the curves (`curves`) have modules of their own. An
interrupted run resumes from its last checkpoint when run again with the same inputs and settings.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from transformers import Trainer, TrainerCallback

from simrag.checkpoints import fingerprint, folder_digest, resume_point
from simrag.config import LoraParams, ModelParams, TrainParams
from simrag.curves import CurvesCallback, LiveCurves
from simrag.embedding import choose_device
from simrag.errors import DataError
from simrag.instructions import Conversation
from simrag.jsonio import atomic_dir
from simrag.machine import peak_memory_mb, release_free_memory
from simrag.models import choose_model_dtype, load_tokenizer, quantization_config, use_4bit
from simrag.sft_data import IGNORE, PadCollator, encode_all, token_micro_batches

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


class TrainMetrics(TypedDict):
    """The figures of a training run (metrics/train_stage1.json, metrics/train_stage2/<round>.json)."""

    examples: dict[str, int]  # train, validation, truncated, dropped_too_long (and what a stage adds)
    steps: int
    epochs: float
    tokens: int
    tokens_per_second: float
    train_loss_first: float | None
    train_loss_final: float | None
    train_loss_mean: float
    val_loss_initial: float | None
    val_loss_final: float | None
    val_loss_best: float | None
    resumed_from_step: int
    train_seconds: float
    seconds: float
    peak_memory_mb: float
    memory_kind: str
    device: str
    precision: str
    gradient_checkpointing: bool
    trainable_parameters: int
    trainable_share: float
    adapter_mb: float


@dataclass(frozen=True)
class TrainSetup:
    """Everything one run needs besides its data: the params blocks, and the run's own length."""

    lora: LoraParams
    train: TrainParams
    epochs: float
    model: ModelParams = field(default_factory=ModelParams)  # device, dtype, 4-bit
    title: str = "training"


# --- model ----------------------------------------------------------------------------------------


def _selective_head_supported(model: Any) -> bool:
    config = model.config
    return (
        getattr(config, "final_logit_softcapping", None) is None
        and getattr(config, "logit_scale", None) is None
        and model.get_output_embeddings() is not None
        and hasattr(model, "get_decoder")
    )


def assistant_loss(model: Any, inputs: dict[str, torch.Tensor], num_items: Any = None) -> torch.Tensor:
    """Next-token cross-entropy over the labelled positions, the output head applied to those alone.

    `num_items` (the labelled tokens of the whole accumulated batch) makes the loss a token mean
    across gradient accumulation; without it, the mean over this batch.
    """
    import torch.nn.functional as F

    inner = getattr(model, "module", model)  # DistributedDataParallel wraps it in data-parallel runs
    base = inner.get_base_model() if hasattr(inner, "get_base_model") else inner
    labels = inputs["labels"][:, 1:]
    keep = labels != IGNORE
    # The selective head calls the decoder directly; a wrapped model must run its own forward, which
    # synchronises gradients across processes.
    if inner is model and _selective_head_supported(base):
        hidden = base.get_decoder()(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])[0]
        logits = base.get_output_embeddings()(hidden[:, :-1][keep])
    else:  # models that transform their logits (soft-capping, scaling): the full forward pass
        out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        logits = out.logits[:, :-1][keep]
    total = F.cross_entropy(logits.float(), labels[keep], reduction="sum")
    denominator = num_items if num_items is not None else keep.sum().clamp(min=1)
    return total / denominator


def load_trainable(
    base_dir: Path, setup: TrainSetup, init_adapter: Path | None = None
) -> tuple[Any, Any, dict[str, Any]]:
    """The base model with a trainable LoRA adapter (new, or `init_adapter` to continue), its tokenizer,
    and how it runs (device, precision)."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    from simrag.fast_dropout import use_fast_lora_dropout

    tokenizer = load_tokenizer(base_dir)
    device = choose_device(setup.model.device)
    compute_dtype = choose_model_dtype(setup.model.dtype, device)
    quantize = use_4bit(setup.model.load_in_4bit, device)
    kwargs: dict[str, Any] = {}
    if quantize:
        # one GPU per process: under `accelerate launch`, each process loads onto its own device
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        kwargs.update(
            quantization_config=quantization_config(compute_dtype), device_map={"": local_rank}, dtype=compute_dtype
        )
    else:
        # fp32 master weights on a CPU (bf16 autocast does the matmuls); the compute dtype on CUDA
        kwargs["dtype"] = compute_dtype if device == "cuda" else torch.float32
    model: Any = AutoModelForCausalLM.from_pretrained(str(base_dir), trust_remote_code=False, **kwargs)
    model.config.use_cache = False
    checkpointing = setup.train.gradient_checkpointing == "true" or (
        setup.train.gradient_checkpointing == "auto" and quantize
    )
    if quantize:
        # non-reentrant checkpointing, as on the CPU: torch warns that the reentrant default is going away
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=checkpointing, gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    elif checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    if init_adapter is not None:
        if not (init_adapter / "adapter_config.json").is_file():
            raise DataError(f"no LoRA adapter to continue from at {init_adapter}")
        model = PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
    else:
        lora = setup.lora
        config = LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.target_modules,
            bias="none",
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, config)
    if device == "cpu":  # nn.Dropout's random draws are a fifth of a CPU step; CUDA's are cheap
        use_fast_lora_dropout(model)
    precision = str(compute_dtype).removeprefix("torch.")
    if quantize:
        precision = f"4-bit NF4 + {precision}"
    elif device == "cpu" and precision != "float32":
        precision = f"float32 + {precision} autocast"
    trainable, total = model.get_nb_trainable_parameters()
    facts = {
        "device": device,
        "precision": precision,
        "gradient_checkpointing": checkpointing,
        "trainable_parameters": int(trainable),
        "trainable_share": round(trainable / total, 5),
        "compute_dtype": compute_dtype,
    }
    return model, tokenizer, facts


# --- training -------------------------------------------------------------------------------------


class AssistantLossTrainer(Trainer):
    """The Trainer with the loss on the assistant's tokens, its output head on those positions alone.

    With `micro_batch_tokens`, the Trainer hands over each update's sequences as one batch, and the step
    runs them in micro-batches of up to that many tokens, accumulating their gradients: the same update
    as fixed micro-batches of `batch_size` (the same sequences, the loss over all their answer tokens), in
    fewer steps where sequences are short (a step has a fixed cost of ~0.5 s on 2 cores).
    """

    loss_is_scaled_for_ga = True  # assistant_loss divides by the accumulated batch's token count

    def __init__(self, *args: Any, micro_batch_tokens: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.micro_batch_tokens = micro_batch_tokens

    def training_step(self, model: Any, inputs: Any, num_items_in_batch: Any = None) -> Any:
        if not self.micro_batch_tokens:
            return super().training_step(model, inputs, num_items_in_batch)
        import torch

        if num_items_in_batch is None:  # the token mean over the whole update, not over each micro-batch
            num_items_in_batch = (inputs["labels"][:, 1:] != IGNORE).sum()
        parts = token_micro_batches(inputs, self.micro_batch_tokens)
        losses = []
        for i, part in enumerate(parts):
            # data-parallel processes exchange gradients once, after the update's last micro-batch
            last = i == len(parts) - 1
            with contextlib.nullcontext() if last else self.accelerator.no_sync(model):
                losses.append(super().training_step(model, part, num_items_in_batch))
        return torch.stack(losses).sum()

    def compute_loss(
        self, model: Any, inputs: Any, return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        with self.accelerator.autocast():
            loss = assistant_loss(model, inputs, num_items_in_batch)
        if num_items_in_batch is not None and self.args.average_tokens_across_devices:
            # `num_items_in_batch` counts the labelled tokens of every process, while data-parallel
            # training averages the processes' gradients: scaled by their number, as transformers
            # does, the loss and its gradient are the token mean of the whole batch.
            loss = loss * self.accelerator.num_processes
        return (loss, {"loss": loss}) if return_outputs else loss


class ReleaseMemory(TrainerCallback):
    """On a CPU, the heap's free pages go back to the system after each update and validation pass: the
    steps' activations differ in shape from batch to batch, and glibc otherwise keeps the freed blocks
    (Stage 1 on a 2-core Intel Xeon peaked at 7,038 MiB without, 5,654 MiB with, the adapter byte-identical)."""

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        release_free_memory()

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        release_free_memory()


def batch_shape(train: TrainParams) -> tuple[int, int]:
    """(sequences per batch the Trainer loads, batches per optimizer update). With micro_batch_tokens the
    Trainer loads a whole update's sequences at once and the step splits them by tokens."""
    if train.micro_batch_tokens:
        return train.batch_size * train.grad_accum, 1
    return train.batch_size, train.grad_accum


def planned_updates(n_examples: int, train: TrainParams, epochs: float, processes: int = 1) -> int:
    """Optimizer updates a run will make, as the Trainer counts them (a last, partial update included)."""
    if train.max_steps:
        return train.max_steps
    per_batch, accumulated = batch_shape(train)
    batches = math.ceil(math.ceil(n_examples / processes) / per_batch)
    return max(1, math.ceil(epochs * math.ceil(batches / accumulated)))


def epochs_for_updates(n_examples: int, train: TrainParams, epochs: float, min_updates: int) -> float:
    """`epochs`, or more where that many make fewer than `min_updates` optimizer updates (a round that
    kept few pairs still trains); the processes of a data-parallel run share the examples."""
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    per_epoch = planned_updates(n_examples, train.model_copy(update={"max_steps": 0}), 1.0, processes)
    return max(epochs, min_updates / per_epoch)


def warmup_updates(n_examples: int, train: TrainParams, epochs: float, processes: int = 1) -> int:
    """Updates with a rising learning rate: warmup_ratio of the run, rounded down, so that a short run has
    none (the first warmup update is taken at learning rate 0)."""
    return int(train.warmup_ratio * planned_updates(n_examples, train, epochs, processes))


def _training_arguments(
    setup: TrainSetup, facts: dict[str, Any], checkpoint_dir: Path, evaluate: bool, n_examples: int
) -> Any:
    import torch
    from transformers import TrainingArguments

    t = setup.train
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    mixed = facts["compute_dtype"] if facts["compute_dtype"] != torch.float32 else None
    per_batch, accumulated = batch_shape(t)
    return TrainingArguments(
        output_dir=str(checkpoint_dir),
        num_train_epochs=setup.epochs,
        max_steps=t.max_steps or -1,
        per_device_train_batch_size=per_batch,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=accumulated,
        learning_rate=t.learning_rate,
        weight_decay=t.weight_decay,
        warmup_steps=warmup_updates(n_examples, t, setup.epochs, processes),
        lr_scheduler_type=t.scheduler,
        optim="adamw_torch",
        bf16=mixed == torch.bfloat16,
        fp16=mixed == torch.float16,
        use_cpu=facts["device"] == "cpu",
        train_sampling_strategy="group_by_length",
        logging_steps=t.logging_steps,
        eval_strategy="steps" if evaluate else "no",
        eval_steps=t.eval_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=1,
        prediction_loss_only=True,
        label_names=["labels"],
        include_num_input_tokens_seen="non_padding",
        report_to="none",
        disable_tqdm=True,
        seed=t.seed,
        data_seed=t.seed,
        dataloader_num_workers=0,
    )


def canonical_adapter_config(path: Path) -> None:
    """Rewrite PEFT's adapter_config.json with `target_modules` sorted. PEFT keeps the resolved modules
    ("all-linear") as a set and writes them in its iteration order, which follows Python's per-process
    string hashing: the same weights made a different folder on every run, and DVC reran every stage
    downstream of it."""
    config = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(config.get("target_modules"), list):
        config["target_modules"] = sorted(config["target_modules"])
    path.write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")  # PEFT's own layout


def save_adapter(model: Any, out_dir: Path) -> None:
    """The LoRA adapter of `model` in `out_dir`, whole or not at all, the same bytes for the same weights."""
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        canonical_adapter_config(tmp / "adapter_config.json")


@dataclass
class _Run:
    """What the setup of a training run hands to its fit and its summary."""

    model: Any
    tokenizer: Any
    facts: dict[str, Any]
    train_rows: list[dict[str, list[int]]]
    val_rows: list[dict[str, list[int]]]
    counts: Counter
    args: Any
    resume_from: Path | None


def _setup_run(
    base_dir: Path,
    train_set: list[Conversation],
    val_set: list[Conversation],
    setup: TrainSetup,
    checkpoint_dir: Path,
    init_adapter: Path | None,
) -> _Run:
    """The model with its adapter, the encoded examples, the Trainer's arguments and the checkpoint to
    resume from (only if it was made from the same inputs: the fingerprint)."""
    model, tokenizer, facts = load_trainable(base_dir, setup, init_adapter)
    train_rows, train_counts = encode_all(train_set, tokenizer, setup.train.max_len)
    val_rows, val_counts = encode_all(val_set, tokenizer, setup.train.max_len)
    val_rows.sort(key=lambda row: len(row["input_ids"]))  # evaluation batches of like lengths: little padding
    if not train_rows:
        raise DataError("no training example fits max_len: raise train.max_len")
    run_fingerprint = fingerprint(
        setup.lora.model_dump(),
        setup.train.model_dump(exclude={"resume"}),
        setup.epochs,
        facts["device"],
        facts["precision"],
        folder_digest(base_dir),
        folder_digest(init_adapter),
        train_rows,
        val_rows,
    )
    args = _training_arguments(setup, facts, checkpoint_dir, bool(val_rows), len(train_rows))
    # The arguments set up the processes (one, or several under `accelerate launch`/torchrun, over gloo
    # on a CPU); only then does the state tell which process is the main one. Only it writes.
    state_of_run = args.distributed_state
    if state_of_run.is_main_process:
        resume_from = resume_point(checkpoint_dir, run_fingerprint, setup.train.resume)
    state_of_run.wait_for_everyone()
    if not state_of_run.is_main_process:
        resume_from = resume_point(checkpoint_dir, run_fingerprint, setup.train.resume, prepare=False)
    if resume_from is not None:
        log.info("resuming from %s", resume_from)
    return _Run(model, tokenizer, facts, train_rows, val_rows, train_counts + val_counts, args, resume_from)


def _summary(run: _Run, trainer: Any, output: Any, out_dir: Path, started: float) -> TrainMetrics:
    """The run's figures, as metrics/train_stage1.json and metrics/train_stage2/<round>.json hold them."""
    state, facts, history = trainer.state, run.facts, trainer.state.log_history
    losses = [e["loss"] for e in history if "loss" in e]
    val_losses = [e["eval_loss"] for e in history if "eval_loss" in e]
    session_tokens = state.num_input_tokens_seen - trainer._initial_num_input_tokens_seen
    runtime = output.metrics.get("train_runtime", 0.0)
    peak, memory_kind = peak_memory_mb(facts["device"])

    return {
        "examples": {
            "train": len(run.train_rows),
            "validation": len(run.val_rows),
            "truncated": run.counts["truncated"],
            "dropped_too_long": run.counts["too_long"],
        },
        "steps": state.global_step,
        "epochs": round(state.epoch or 0.0, 3),
        "tokens": int(state.num_input_tokens_seen),
        "tokens_per_second": round(session_tokens / runtime, 1) if runtime else 0.0,
        "train_loss_first": round(losses[0], 4) if losses else None,
        "train_loss_final": round(losses[-1], 4) if losses else None,
        "train_loss_mean": round(output.training_loss, 4),
        "val_loss_initial": round(val_losses[0], 4) if val_losses else None,
        "val_loss_final": round(val_losses[-1], 4) if val_losses else None,
        "val_loss_best": round(min(val_losses), 4) if val_losses else None,
        "resumed_from_step": int(run.resume_from.name.rsplit("-", 1)[-1]) if run.resume_from else 0,
        "train_seconds": round(runtime, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "peak_memory_mb": peak,
        "memory_kind": memory_kind,
        "device": facts["device"],
        "precision": facts["precision"],
        "gradient_checkpointing": facts["gradient_checkpointing"],
        "trainable_parameters": facts["trainable_parameters"],
        "trainable_share": facts["trainable_share"],
        "adapter_mb": round(sum(f.stat().st_size for f in out_dir.rglob("*") if f.is_file()) / 2**20, 2),
    }


def train_adapter(
    base_dir: Path,
    train_set: list[Conversation],
    val_set: list[Conversation],
    setup: TrainSetup,
    out_dir: Path,
    checkpoint_dir: Path,
    plots_dir: Path,
    init_adapter: Path | None = None,
    callbacks: tuple[Any, ...] = (),
) -> TrainMetrics:
    """Train a LoRA adapter on `train_set`, save it to `out_dir`, and return the run's metrics: setup, fit
    (resuming from a matching checkpoint), summary.

    `plots_dir` gets the curves (dvclive's TSV files and curves.png); `checkpoint_dir` holds the
    checkpoints while the run lasts, and is removed when it ends.
    """
    from transformers import set_seed

    started = time.perf_counter()
    set_seed(setup.train.seed)
    run = _setup_run(Path(base_dir), train_set, val_set, setup, Path(checkpoint_dir), init_adapter)
    main = run.args.distributed_state.is_main_process
    curves = LiveCurves(Path(plots_dir)) if main else None
    trainer = AssistantLossTrainer(
        model=run.model,
        args=run.args,
        train_dataset=run.train_rows,
        eval_dataset=run.val_rows or None,
        data_collator=PadCollator(run.tokenizer.pad_token_id),
        callbacks=[
            CurvesCallback(curves, main, started),
            *([ReleaseMemory()] if run.facts["device"] == "cpu" else []),
            *callbacks,
        ],
        micro_batch_tokens=setup.train.micro_batch_tokens,
    )
    trainer.args.eval_on_start = bool(run.val_rows) and run.resume_from is None
    facts = run.facts
    log.info(
        "training %s: %d examples (%d validation), %s, %s, %d trainable parameters (%.2f%%)",
        setup.title,
        len(run.train_rows),
        len(run.val_rows),
        facts["device"],
        facts["precision"],
        facts["trainable_parameters"],
        100 * facts["trainable_share"],
    )
    output = trainer.train(resume_from_checkpoint=str(run.resume_from) if run.resume_from else None)
    evaluated = [e for e in trainer.state.log_history if "eval_loss" in e]
    if run.val_rows and (not evaluated or evaluated[-1]["step"] != trainer.state.global_step):
        trainer.evaluate()
    if main and curves:
        curves.close(trainer.state.log_history, setup.title)
        save_adapter(trainer.accelerator.unwrap_model(trainer.model), Path(out_dir))
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    run.args.distributed_state.wait_for_everyone()  # the adapter is in place before any process reads its size
    return _summary(run, trainer, output, Path(out_dir), started)
