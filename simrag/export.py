"""Export an adapted model as a standalone one: the LoRA chain merged into the base, with its model card.

The folder holds what plain `transformers` loads (`config.json`, `model.safetensors`, the tokenizer with its
chat template, `generation_config.json`), optionally `<model>.gguf` for llama.cpp and Ollama
(`simrag.gguf_export`), and a `README.md` model card: the base, the chain of adapters
that made the model (stage1 -> stage2_r1 -> ...), the data and params of each stage, and the model's
evaluation with confidence intervals and corrected p-values, all read from the pipeline's own metrics.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simrag.config import Params
from simrag.errors import DataError
from simrag.jsonio import atomic_dir

CARD_METRICS = ("token_f1", "answer_similarity", "evidence_recall", "answer_quality", "context_relevance")


def _read(path: Path) -> Any:
    """A metrics file's JSON, or {} where the pipeline has not written it yet."""
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def lineage(weights: Path, params: Params) -> list[str]:
    """The training stages that made `weights`, oldest first: [] for the base, ["stage1"] for Stage 1,
    ["stage1", "stage2_r1", "stage2_r2"] for round r2 (following each round's `from`)."""
    name = Path(weights).name
    if name == "stage1":
        return ["stage1"]
    if name.startswith("stage2_") and name.removeprefix("stage2_") in params.rounds:
        start = str(params.rounds[name.removeprefix("stage2_")]["from"])
        return [*lineage(Path(weights).parent / start, params), name]
    return []


def _stage_lines(stage: str, params: Params, root: Path) -> list[str]:
    if stage == "stage1":
        m = _read(root / "metrics" / "train_stage1.json")
        data = ", ".join(params.stage1.data)
        return [
            f"- **stage1**: LoRA instruction tuning on {data} ({m.get('examples', {}).get('train', '?')} examples), "
            f"{m.get('steps', '?')} updates at learning rate {params.train.learning_rate:g}; validation loss "
            f"{m.get('val_loss_initial')} -> {m.get('val_loss_final')}"
        ]
    round_name = stage.removeprefix("stage2_")
    start, settings = params.round_settings(round_name)
    written = _read(root / "metrics" / "generate_qa" / f"{round_name}.json")
    trained = _read(root / "metrics" / "train_stage2" / f"{round_name}.json")
    train = settings.train_params(params.train)
    return [
        f"- **{stage}** (from {start}): SimRAG self-improvement round {round_name}, the `{settings.recipe}` recipe: "
        f"{written.get('kept', '?')} of {written.get('candidates', '?')} synthetic QA pairs kept from "
        f"{written.get('chunks', '?')} corpus chunks; {trained.get('steps', '?')} updates at learning rate "
        f"{train.learning_rate:g}; validation loss {trained.get('val_loss_initial')} -> {trained.get('val_loss_final')}"
    ]


def _evaluation_lines(model: str, root: Path) -> list[str]:
    sets = sorted((root / "metrics" / "eval" / model).glob("*.json"))
    if not sets:
        return ["Not evaluated yet (`dvc repro evaluate@" + model + "`)."]
    lines = ["| set | n | " + " | ".join(CARD_METRICS) + " |", "|---|---|" + "---|" * len(CARD_METRICS)]
    for path in sets:
        summary = _read(path)
        cells = []
        for metric in CARD_METRICS:
            value = summary.get(metric)
            cells.append(
                f"{value['mean']:.3f} [{value['ci_low']:.3f}, {value['ci_high']:.3f}]"
                if isinstance(value, dict)
                else "–"
            )
        lines.append(f"| {path.stem} | {summary.get('n', '?')} | " + " | ".join(cells) + " |")
    comparisons = _read(root / "plots" / "eval" / "comparisons.json") or []
    mine = [c for c in comparisons if c.get("model") == model and c.get("metric") in ("token_f1", "answer_similarity")]
    if mine:
        lines += ["", "Paired differences (95% CI; p adjusted over all of the report's tests):", ""]
        lines += ["| against | set | metric | difference | p (adjusted) |", "|---|---|---|---|---|"]
        for c in mine:
            lines.append(
                f"| {c['against']} | {c['set']} | {c['metric']} | {c['diff']:+.3f} [{c['ci_low']:+.3f}, "
                f"{c['ci_high']:+.3f}] | {c['p_value']:.3g} ({c['p_adjusted']:.3g}) |"
            )
    return lines


def model_card(model: str, weights: Path, params: Params, dtype: str, root: Path) -> str:
    base = _read(root / "metrics" / "base_model.json")
    chain = lineage(weights, params)
    lines = [
        f"# {model}: a retrieval-augmented generator adapted with simrag",
        "",
        f"Base model: `{params.model.base}`"
        + (f" ({base.get('source')}, {base.get('parameters', 0):,} parameters)" if base else "")
        + ".",
        "",
        "## How it was made",
        "",
    ]
    if not chain:
        lines.append("The base model itself, untuned (the pipeline's baseline).")
    for stage in chain:
        lines += _stage_lines(stage, params, root)
    if chain:
        lora = params.lora
        lines += [
            "",
            f"Each stage continued one LoRA adapter (r={lora.r}, alpha={lora.alpha}, dropout {lora.dropout:g}, "
            f"targets {lora.target_modules}); the last one is merged here into the base in float32 and saved "
            f"in {dtype}.",
        ]
    lines += [
        "",
        "## How to use it",
        "",
        "It answers a question from retrieved passages, in the chat format it was tuned and evaluated on:",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
        'model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")',
        'messages = [{"role": "user", "content": "Context:\\n<passages>\\n\\nQuestion: <question>"}]',
        "inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors='pt')",
        "print(tokenizer.decode(model.generate(inputs, max_new_tokens=128)[0, inputs.shape[1]:]))",
        "```",
        "",
        f"## Evaluation (retrieval from `{params.evaluate.models[model].index}`)",
        "",
        *_evaluation_lines(model, root),
        "",
        "Figures from the pipeline's own `metrics/` and `plots/eval/comparisons.json` at export time.",
    ]
    return "\n".join(lines) + "\n"


def export_model(
    model: str,
    out_dir: Path,
    params: Params,
    base: Path,
    dtype: str = "float32",
    root: Path = Path("."),
    gguf: str | None = None,
) -> Path:
    """Write `model` (a key of evaluate.models) to `out_dir` as a standalone transformers model with a card;
    the card's figures come from the pipeline's metrics under `root`. `gguf` (f16 or f32) also writes
    `<model>.gguf` for llama.cpp and Ollama."""
    import torch
    from transformers import AutoModelForCausalLM

    from simrag.models import load_tokenizer, merge_adapter
    from simrag.rag import model_weights

    entry, adapter = model_weights(params, model, base)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise DataError(f"{out_dir} is not empty: export into a new folder")
    if not (Path(base) / "config.json").is_file():
        raise DataError(f"no base model at {base}: run `dvc repro base_model` (or `dvc pull`) first")
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    merged: Any = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    if adapter is not None:
        merged = merge_adapter(merged, adapter)
    merged = merged.to(torch_dtype)
    tokenizer = load_tokenizer(Path(base))
    merged.generation_config.pad_token_id = tokenizer.pad_token_id
    with atomic_dir(out_dir) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "README.md").write_text(model_card(model, Path(entry.weights), params, dtype, root), encoding="utf-8")
        if gguf:
            from simrag.gguf_export import write_gguf

            write_gguf(tmp, tmp / f"{model}.gguf", gguf, name=model)
    return out_dir
