"""The comparison report: which part of the adaptation changed what, with corrected statistics.

Reads what `evaluate` wrote (per-question records and per-set summaries), what `timing` measured and what
the training stages measured, and writes a Markdown report; `simrag.report_figures` draws its charts.

Attribution is by design. A model is a generator (weights) and an index: two models on the same index
retrieve identical contexts, so their difference is the generator's alone; the same weights on two
indexes differ by the retriever alone. Every paired test of the report is corrected for multiple
comparisons together (evaluate.correction), and a difference is called significant only after that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, cast

import yaml

from simrag.errors import DataError
from simrag.jsonio import read_json, read_jsonl
from simrag.metrics import adjust_p_values, echo_summary, paired_comparison, summarise

if TYPE_CHECKING:
    from simrag.config import Params
    from simrag.evaluation import EvalRecord
    from simrag.indexing import IndexMetrics
    from simrag.round_data import RoundTrainMetrics
    from simrag.synthetic_qa import QARoundMetrics
    from simrag.training import TrainMetrics

RETRIEVAL_METRICS = ("context_relevance", "context_relevance_ref", "recall_at_k", "mrr")
# Shown, not tested: how close an answer stays to its question's subject explains answer similarity (the
# reference answers restate their questions), it is not an outcome; testing it would only widen the family.
DIAGNOSTIC_METRICS = ("question_similarity",)
ECHO = "(the question itself)"  # the row of the question echo: each question scored as its own answer

# name in the files -> label in the report; also the order of the tables
METRICS = {
    "context_relevance": "Context relevance",
    "context_relevance_ref": "Context relevance (ref. embedder)",
    "answer_quality": "Answer quality (paper)",
    "groundedness": "Groundedness",
    "question_similarity": "Answer ~ question",
    "token_f1": "Token F1",
    "rouge_l": "ROUGE-L",
    "answer_similarity": "Answer similarity",
    "evidence_recall": "Evidence recall",
    "recall_at_k": "Gold recall@k",
    "mrr": "Gold MRR",
    "label_accuracy": "Label accuracy",
}


# what judges whether an answer is right (reference-based); the paper's rule-based score rewards copying
# context words, not being right, and is kept as the paper's metric only
class SetResult(TypedDict):
    """One model on one set: its metrics (metrics/eval/<model>/<set>.json) and its per-question records."""

    summary: dict[str, Any]  # metric -> {mean, ci_low, ci_high, n}, and counts
    records: list[EvalRecord]
    members: NotRequired[list[str]]  # a pooled set: the sets it joins


Results = dict[str, dict[str, SetResult]]  # model -> set -> its result


class StageFigures(TypedDict, total=False):
    """What the stages before `evaluate` measured, as the report reads it (see `stage_figures`)."""

    index: IndexMetrics
    train_stage1: TrainMetrics
    generate_qa: dict[str, QARoundMetrics]
    train_stage2: dict[str, RoundTrainMetrics]
    train_retriever: dict[str, dict[str, Any]]  # retriever_training.adapt_retriever's figures
    reindex: dict[str, IndexMetrics]


HEADLINE = ("token_f1", "answer_similarity", "evidence_recall", "answer_quality")
# The reproduction paper's Table 1 and 2 (Qwen2.5-1.5B, 9 web pages, 30 questions, a T4 GPU)
PAPER_CONTEXT_RELEVANCE = (0.316, 0.291, 0.340)  # every model: the paper tuned only the generator
PAPER_QUALITY = {"baseline": 0.801, "stage1": 0.800, "stage2": 0.786}
PAPER_SECONDS = {"baseline": 41.2, "stage1": 62.6, "stage2": 63.2}


def load_results(models: list[str], sets: list[str], records_dir: Path, metrics_dir: Path) -> Results:
    """{model: {set: {"summary": ..., "records": [...]}}} for every model and set that was evaluated."""
    results: Results = {}
    for model in models:
        for set_name in sets:
            summary_path = metrics_dir / model / f"{set_name}.json"
            if summary_path.is_file():
                records = cast("list[EvalRecord]", list(read_jsonl(records_dir / model / f"{set_name}.jsonl")))
                results.setdefault(model, {})[set_name] = {"summary": read_json(summary_path), "records": records}
    return results


def pool_sets(results: Results, pooled: dict[str, list[str]], samples: int, seed: int) -> None:
    """Add each pooled set (e.g. devops = devops_public + devops_dev) to every model's results: its records
    are the members' (ids prefixed with the set's name), its summary the bootstrap over all of them."""
    for data in results.values():
        for name, members in pooled.items():
            if not all(m in data for m in members):
                continue
            records: list[EvalRecord] = [{**r, "id": f"{m}/{r['id']}"} for m in members for r in data[m]["records"]]
            summary: dict[str, Any] = {"n": len(records)}
            for metric in METRICS:
                values = [r["scores"][metric] for r in records if metric in r["scores"]]
                if values:
                    summary[metric] = summarise(values, (samples, seed))
            if echo := echo_summary(records, (samples, seed)):
                summary["question_echo"] = echo
            data[name] = {"summary": summary, "records": records, "members": members}


@dataclass(frozen=True)
class Pair:
    """A comparison of `model` against `against`, and what their difference isolates."""

    model: str
    against: str
    isolates: str  # "generator" (same index) or "retriever" (same weights)


def comparison_pairs(models: dict[str, dict[str, str]], parents: dict[str, str]) -> list[Pair]:
    """The comparisons the report makes.

    Generator (same index): every model against the baseline, every Stage 2 model against stage1, and a
    round against the round it started from. Retriever (same weights, other index): a model on a tuned
    index against the same weights on the baseline's index.
    """
    pairs: list[Pair] = []
    for name, spec in models.items():
        if name == "baseline":
            continue
        same_index = [o for o, s in models.items() if o != name and s["index"] == spec["index"]]
        for other in dict.fromkeys(["baseline", "stage1", parents.get(name, "")]):
            if other in same_index and other != name and (other != "stage1" or name.startswith("stage2")):
                pairs.append(Pair(name, other, "generator"))
        for other, o_spec in models.items():
            same_weights = other != name and o_spec["weights"] == spec["weights"]
            if same_weights and spec["index"] != o_spec["index"] == models["baseline"]["index"]:
                pairs.append(Pair(name, other, "retriever"))
    return pairs


def compare(
    results: Results,
    pairs: list[Pair],
    tested_sets: list[str],
    samples: int,
    seed: int,
    correction: str = "holm",
) -> list[dict[str, Any]]:
    """Paired differences for each pair, set and metric, with raw and adjusted p-values (one family: every
    test of the report). Generator pairs are compared on the answer metrics only: their retrieval is
    identical by construction. Diagnostic metrics are shown, not tested."""
    rows: list[dict[str, Any]] = []
    for pair in pairs:
        metrics = [
            m
            for m in METRICS
            if m not in DIAGNOSTIC_METRICS and (pair.isolates == "retriever" or m not in RETRIEVAL_METRICS)
        ]
        for set_name in tested_sets:
            if set_name not in results.get(pair.model, {}) or set_name not in results.get(pair.against, {}):
                continue
            theirs = {r["id"]: r for r in results[pair.against][set_name]["records"]}
            pairs_of_records = [
                (r, theirs[r["id"]]) for r in results[pair.model][set_name]["records"] if r["id"] in theirs
            ]
            for metric in metrics:
                usable = [
                    (a["scores"][metric], b["scores"][metric])
                    for a, b in pairs_of_records
                    if metric in a["scores"] and metric in b["scores"]
                ]
                if usable:
                    ours, other = zip(*usable, strict=True)
                    stats = paired_comparison(ours, other, samples, seed)
                    rows.append(
                        {
                            "model": pair.model,
                            "against": pair.against,
                            "isolates": pair.isolates,
                            "set": set_name,
                            "metric": metric,
                            **stats,
                        }
                    )
    raw = [float(r["p_value"]) for r in rows]
    for row, adjusted in zip(rows, adjust_p_values(raw, correction), strict=True):
        row["p_adjusted"] = adjusted
        row["significant"] = adjusted < 0.05
    return rows


def _ci(stat: dict[str, float]) -> str:
    return f"{stat['mean']:.3f} [{stat['ci_low']:.3f}, {stat['ci_high']:.3f}]"


def _p(value: float) -> str:
    return f"{value:.2g}" if value < 0.001 else f"{value:.3f}"


def comparison_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| Model | Against | Set | Metric | Difference | 95% CI | p | p adjusted | n |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        diff = f"**{row['diff']:+.3f}**" if row["significant"] else f"{row['diff']:+.3f}"
        cells = [row["model"], row["against"], row["set"], METRICS[row["metric"]], diff]
        cells += [f"[{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]", _p(row["p_value"]), _p(row["p_adjusted"])]
        lines.append("| " + " | ".join([*cells, str(row["n"])]) + " |")
    return lines


def markdown(
    results: Results,
    comparisons: list[dict[str, Any]],
    params: dict[str, Any],
    stages: StageFigures | None = None,
    timing: dict[str, Any] | None = None,
) -> str:
    """The whole report. `stages`: what the other stages measured (see `stage_figures`); `timing`: what the
    `timing` stage measured."""
    stages = stages or {}
    evaluate = params["evaluate"]
    indexes = {name: spec["index"] for name, spec in evaluate["models"].items()}
    pooled = evaluate.get("pooled") or {}
    correction = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no"}[evaluate.get("correction", "holm")]
    lines = [
        "# Results",
        "",
        "Generated by the `report` stage from `metrics/` and `data/eval/`; do not edit by hand.",
        "",
        "![Paired differences from the baseline](../plots/eval/forest.png)",
        "",
        "Each cell: mean [95% bootstrap CI]. Differences are paired over the same questions: the mean difference,",
        "its 95% paired-bootstrap CI and the p-value of a paired sign-flip test of that same mean difference.",
        f"All {len(comparisons)} tests of this report form one family, corrected with {correction}'s method; a",
        "difference in **bold** has an adjusted p under 0.05, and only those are called significant.",
        "",
    ]
    lines += headline_section(results, comparisons, pooled)
    lines += effect_section(comparisons, "generator")
    lines += effect_section(comparisons, "retriever")
    sets = list(dict.fromkeys(s for per_set in results.values() for s in per_set))
    lines += ["## Every set", ""]
    for set_name in sets:
        models = [m for m in results if set_name in results[m]]
        present = [k for k in METRICS if any(k in results[m][set_name]["summary"] for m in models)]
        members = results[models[0]][set_name].get("members")
        lines += [f"### {set_name}" + (f" ({' + '.join(members)})" if members else ""), ""]
        header = ["Model", "Index", "n", *(METRICS[k] for k in present)]
        if not members:
            header.append("Tokens/s (batched)")
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for model in models:
            s = results[model][set_name]["summary"]
            cells = [model, indexes.get(model, "?"), str(s["n"]), *(_ci(s[k]) if k in s else "–" for k in present)]
            if not members:
                cells.append(f"{s['tokens_per_second']:.1f}")
            lines.append("| " + " | ".join(cells) + " |")
        first = results[models[0]][set_name]["summary"]
        if echo := first.get("question_echo"):
            cells = [ECHO, "–", str(first["n"]), *(_ci(echo[k]) if k in echo else "–" for k in present)]
            lines.append("| " + " | ".join(cells + ([] if members else ["–"])) + " |")
        if "majority_baseline" in first:
            lines += [
                "",
                f"Label accuracy of always answering the most frequent label: {first['majority_baseline']:.3f}.",
            ]
            for model in models:
                s = results[model][set_name]["summary"]
                if "predicted_labels" in s:
                    lines.append(f"- {model}: predicted {s['predicted_labels']} (true {s['true_labels']})")
        lines.append("")
    lines += paper_section(results, timing, params)
    lines += timing_section(timing)
    lines += retriever_section(stages)
    lines += qa_section(stages.get("generate_qa", {}))
    lines += resources_section(stages)
    lines += ["## Parameters of this run", "", "```yaml"]
    lines += [yaml.safe_dump(params, sort_keys=False).rstrip(), "```", ""]
    return "\n".join(lines)


def headline_section(results: Results, comparisons: list[dict[str, Any]], pooled: dict[str, list[str]]) -> list[str]:
    """The metrics that reward a correct answer, on the largest referenced set (a pooled one if any)."""
    candidates = [name for name in pooled if any(name in per_set for per_set in results.values())]
    candidates += [s for per_set in results.values() for s in per_set if "token_f1" in per_set[s]["summary"]]
    if not candidates:
        return []
    target = max(
        dict.fromkeys(candidates), key=lambda s: next(r[s]["summary"]["n"] for r in results.values() if s in r)
    )
    models = [m for m in results if target in results[m]]
    n = results[models[0]][target]["summary"]["n"]
    lines = [
        f"## Headline: {target} ({n} questions)",
        "",
        "Reference-based metrics judge whether an answer is right; the paper's rule-based answer quality rewards",
        "copying words of the context and the question, and is shown as the paper's metric only.",
        "",
        "| Model | " + " | ".join(METRICS[k] for k in HEADLINE) + " |",
        "|---|" + "---|" * len(HEADLINE),
    ]
    for model in models:
        s = results[model][target]["summary"]
        lines.append(f"| {model} | " + " | ".join(_ci(s[k]) if k in s else "–" for k in HEADLINE) + " |")
    if echo := results[models[0]][target]["summary"].get("question_echo"):
        lines.append(f"| {ECHO} | " + " | ".join(_ci(echo[k]) if k in echo else "–" for k in HEADLINE) + " |")
        lines += [
            "",
            f"{ECHO}: each question scored as if it were its own answer, what an answer that only restates its",
            "question scores. Answer similarity rewards staying on the question's subject (see Answer ~",
            "question in the tables below), not only being right.",
        ]
    rows = [r for r in comparisons if r["set"] == target and r["metric"] in HEADLINE]
    if rows:
        lines += ["", "Paired differences on these questions:", "", *comparison_table(rows)]
    return [*lines, ""]


EFFECTS = {
    "generator": (
        "The generator's effect",
        "Each pair below retrieves from the same index with the same top-k and context budget, so its difference\n"
        "is the generator's doing alone (retrieval metrics are identical by construction and not tested).",
    ),
    "retriever": (
        "The retriever's effect",
        "Each pair below is the same generator on a round's tuned index against the baseline's index, so its\n"
        "difference is the retriever's doing alone.",
    ),
}


def effect_section(comparisons: list[dict[str, Any]], isolates: str) -> list[str]:
    """The comparisons that isolate the generator (or the retriever), with the sentence that says so."""
    rows = [r for r in comparisons if r["isolates"] == isolates]
    if not rows:
        return []
    title, sentence = EFFECTS[isolates]
    return [f"## {title}", "", *sentence.split("\n"), "", *comparison_table(rows), ""]


def paper_section(results: Results, timing: dict[str, Any] | None, params: dict[str, Any]) -> list[str]:
    """This run's seed30 figures beside the reproduction paper's Table 1 and Table 2."""
    if "seed30" not in results.get("baseline", {}):
        return []
    prepare, model = params.get("prepare", {}), params.get("model", {})
    generator = "SmolLM2-135M-Instruct" if model.get("base", "default") == "default" else model["base"]
    threshold = params.get("retrieval", {}).get("threshold", "?")
    lines = [
        "## Beside the reproduction paper (seed30)",
        "",
        "The paper (Table 1, 2): Qwen2.5-1.5B-Instruct with 4-bit QLoRA on a T4 GPU, its 9 web pages in ~400-token",
        f"chunks, threshold 0.7. Here: {generator}, `{prepare.get('corpus_dir', '?')}` in "
        f"{prepare.get('chunk_tokens', '?')}-token chunks, threshold {threshold},",
        "the same 30 questions, the same embedder, top-k 5. Context relevance with the paper's CI, pooled over every",
        "retrieved chunk; time per query at batch 1 (`timing`) on this run's machine.",
        "",
        "| Model | Context relevance (pooled CI) | Paper | Answer quality | Paper | Time (s, batch 1) | Paper |",
        "|---|---|---|---|---|---|---|",
    ]
    paper_cr = "{:.3f} [{:.3f}, {:.3f}]".format(*PAPER_CONTEXT_RELEVANCE)
    for model, per_set in results.items():
        if "seed30" not in per_set:
            continue
        s = per_set["seed30"]["summary"]
        role = "stage2" if model.startswith("stage2") else model
        quality = PAPER_QUALITY.get(role)
        seconds = PAPER_SECONDS.get(role)
        ours_time = (timing or {}).get("models", {}).get(model, {}).get("mean")
        pooled_cr = _ci(s["context_relevance_pooled"]) if "context_relevance_pooled" in s else "–"
        cells = [model, pooled_cr, paper_cr, _ci(s["answer_quality"]), "–" if quality is None else str(quality)]
        cells += ["–" if ours_time is None else f"{ours_time:.2f}", "–" if seconds is None else str(seconds)]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def timing_section(timing: dict[str, Any] | None) -> list[str]:
    if not timing or not timing.get("models"):
        return []
    lines = [
        "## Response time",
        "",
        f"Per query at batch 1 (retrieval and generation), {timing['questions']} questions of {timing['set']}, the "
        "models interleaved question by question in one process so that the machine's drift falls on all alike.",
        f"Machine: {timing.get('machine', '?')}. Batched throughput is in the set tables (tokens/s).",
        "",
        "| Model | Mean (s) | p50 | p95 | New tokens (mean) | Difference from baseline [95% CI] |",
        "|---|---|---|---|---|---|",
    ]
    for model, t in timing["models"].items():
        diff = t.get("vs_baseline")
        cell = f"{diff['diff']:+.2f} [{diff['ci_low']:+.2f}, {diff['ci_high']:+.2f}]" if diff else "–"
        lines.append(
            f"| {model} | {t['mean']:.2f} | {t['p50']:.2f} | {t['p95']:.2f} | {t['new_tokens_mean']:.1f} | {cell} |"
        )
    lines += ["", "Time follows the answer's length: a model that writes shorter answers answers faster.", ""]
    return lines


def _arrow(before: Any, after: Any, fmt: str = "{:.3f}") -> str:
    if before is None or after is None:
        return "–"
    return f"{fmt.format(before)} → {fmt.format(after)}"


def retriever_section(stages: StageFigures) -> list[str]:
    """Per round: how the embedder was tuned (when retriever adaptation is on)."""
    trained = stages.get("train_retriever", {})
    if not trained:
        return []
    reindexed = stages.get("reindex", {})
    lines = [
        "## Retriever adaptation",
        "",
        "Each round's kept (question, source chunk) pairs tune the embedder (MultipleNegativesRankingLoss, in-batch",
        "and hard negatives); the corpus is re-embedded into the round's index. Held-out: the round's held-out",
        "questions ranking their own chunk among random corpus chunks.",
        "",
        "| Round | Tuned from | Pairs (train / held out) | Hard negatives | Loss first → last | Held-out MRR | "
        "Held-out recall@1 | Train (s) | Re-embed (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, t in trained.items():
        before, after = t["validation_before"], t["validation_after"]
        lines.append(
            f"| {name} | {t['from']} | {t['pairs']['train']} / {t['pairs']['validation']} | "
            f"{t['mining']['hard_negatives']} | {_arrow(t['train_loss_first'], t['train_loss_final'])} | "
            f"{_arrow(before['mrr'], after['mrr'])} | {_arrow(before['recall_at_1'], after['recall_at_1'])} | "
            f"{t['train_seconds']:.0f} | {reindexed[name]['seconds'] if name in reindexed else float('nan'):.0f} |"
        )
    return [*lines, ""]


def qa_section(rounds: dict[str, QARoundMetrics]) -> list[str]:
    """Synthetic QA per round: candidates, kept, and why the rest were rejected."""
    if not rounds:
        return []
    reasons = list(dict.fromkeys(r for figures in rounds.values() for r in figures.get("rejected", {})))
    header = ["Round", "From", "Recipe", "Chunks", "Candidates", "Kept", "Keep rate", *reasons]
    lines = ["## Synthetic QA per round", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, f in rounds.items():
        cells = [name, f.get("from", "?"), f.get("recipe", "?"), str(f.get("chunks", "?")), str(f["candidates"])]
        cells += [str(f["kept"]), f"{f['kept'] / f['candidates']:.1%}" if f["candidates"] else "–"]
        cells += [str(f.get("rejected", {}).get(r, 0)) for r in reasons]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _peak(figures: Mapping[str, object]) -> float | None:
    """The peak memory a stage script added to its metrics, where it recorded one."""
    peak = figures.get("peak_memory_mb")
    return float(peak) if isinstance(peak, int | float) else None


def resources_section(stages: StageFigures) -> list[str]:
    """Time, memory and size of what each stage produced, as the stages measured them."""
    rows: list[tuple[str, float, float | None, float | None, str]] = []
    if "index" in stages:
        i = stages["index"]
        rows.append(("index", i["seconds"], _peak(i), i["index_mb"], f"{i['chunks_per_second']} chunks/s"))
    if "train_stage1" in stages:
        t = stages["train_stage1"]
        rows.append(
            ("train_stage1", t["seconds"], t["peak_memory_mb"], t["adapter_mb"], f"{t['tokens_per_second']} tokens/s")
        )
    for name, g in stages.get("generate_qa", {}).items():
        rows.append(
            (f"generate_qa@{name}", g["generation_seconds"], _peak(g), None, f"{g['tokens_per_second']} tokens/s")
        )
    for name, t in stages.get("train_stage2", {}).items():
        rows.append(
            (
                f"train_stage2@{name}",
                t["seconds"],
                t["peak_memory_mb"],
                t["adapter_mb"],
                f"{t['tokens_per_second']} tokens/s",
            )
        )
    for name, r in stages.get("train_retriever", {}).items():
        rate = f"{r['pairs_per_second']} pairs/s"
        rows.append((f"train_retriever@{name}", r["seconds"], r["peak_memory_mb"], r["embedder_mb"], rate))
    for name, i in stages.get("reindex", {}).items():
        rows.append((f"reindex@{name}", i["seconds"], _peak(i), i["index_mb"], f"{i['chunks_per_second']} chunks/s"))
    if not rows:
        return []
    lines = [
        "## Resources",
        "",
        "As each stage measured itself (peak memory: the process's peak resident set on a CPU, allocated memory",
        "on CUDA). Output: the adapter, tuned embedder or index the stage wrote.",
        "",
        "| Stage | Time (s) | Peak memory (MB) | Output (MB) | Throughput |",
        "|---|---|---|---|---|",
    ]
    for stage, seconds, memory, size, rate in rows:
        memory_cell = f"{memory:,.0f}" if memory is not None else "–"
        size_cell = f"{size:.1f}" if size is not None else "–"
        lines.append(f"| {stage} | {seconds:,.0f} | {memory_cell} | {size_cell} | {rate} |")
    return [*lines, ""]


def stage_figures(metrics_dir: Path, params: Params) -> StageFigures:
    """What the stages before `evaluate` wrote under `metrics_dir`, for the rounds in `params`."""

    def read(path: Path) -> Any:  # a metrics file as its stage wrote it (StageFigures names the types)
        return read_json(path) if path.is_file() else None

    def per_round(stage: str, rounds: list[str]) -> Any:
        found = {r: read(metrics_dir / stage / f"{r}.json") for r in rounds}
        return {r: f for r, f in found.items() if f}

    figures = StageFigures(
        generate_qa=per_round("generate_qa", list(params.rounds)),
        train_stage2=per_round("train_stage2", list(params.rounds)),
        train_retriever=per_round("train_retriever", list(params.retriever.rounds)),
        reindex=per_round("reindex", list(params.retriever.rounds)),
    )
    if index := read(metrics_dir / "index.json"):
        figures["index"] = index
    if stage1 := read(metrics_dir / "train_stage1.json"):
        figures["train_stage1"] = stage1
    return figures


def summary_rows(results: Results) -> list[dict[str, Any]]:
    """One row per model, set and metric: the data behind the bar charts."""
    rows = []
    for model, per_set in results.items():
        for set_name, data in per_set.items():
            for metric in METRICS:
                stat = data["summary"].get(metric)
                if stat:
                    rows.append(
                        {
                            "model": model,
                            "set": set_name,
                            "metric": metric,
                            "mean": stat["mean"],
                            "ci_low": stat["ci_low"],
                            "ci_high": stat["ci_high"],
                        }
                    )
    return rows


def headline_summary(results: Results, comparisons: list[dict[str, Any]]) -> dict[str, Any]:
    """metrics/summary.json: a few numbers per set and model, small enough for `dvc exp show`.

    Per set: each model's mean of the headline metrics it has, and for each model its difference from
    the baseline in token F1 and answer similarity with the adjusted p where the report tested it."""
    summary: dict[str, Any] = {}
    tested = {(r["model"], r["set"], r["metric"]): r for r in comparisons if r["against"] == "baseline"}
    for model, per_set in results.items():
        for set_name, data in per_set.items():
            if "members" not in data and any(set_name in d.get("members", ()) for d in per_set.values()):
                continue  # a member of a pooled set: the pooled one speaks for it
            s = data["summary"]
            keys = HEADLINE if "token_f1" in s else ("context_relevance", "answer_quality")
            entry = {k: round(s[k]["mean"], 4) for k in keys if k in s}
            for metric in ("token_f1", "answer_similarity"):
                row = tested.get((model, set_name, metric))
                if row:
                    entry[f"{metric}_vs_baseline"] = round(row["diff"], 4)
                    entry[f"{metric}_vs_baseline_p_adj"] = round(row["p_adjusted"], 4)
            summary.setdefault(set_name, {})[model] = entry
            if echo := s.get("question_echo"):
                summary[set_name]["question_echo"] = {k: round(echo[k]["mean"], 4) for k in HEADLINE if k in echo}
    return summary


@dataclass
class Analysis:
    """What the report stage computes from the evaluations and the other stages' metrics."""

    results: Results  # model -> set -> its records and metrics (pooled sets included)
    comparisons: list[dict[str, Any]]  # paired differences, with CIs and corrected p-values
    figures: StageFigures  # the other stages' metrics: QA rounds, retriever, time and memory
    timing: dict[str, Any] | None  # metrics/timing.json, where the stage ran
    headline_set: str  # the set the forest plot shows: the first pooled one, else the last tested


def analyse(params: Params, records_dir: Path, metrics_root: Path) -> Analysis:
    """Every evaluated model against the baseline and its parent, on each tested set (a pooled set is tested,
    not its members)."""
    ev = params.evaluate
    results = load_results(list(ev.models), list(ev.sets), records_dir, metrics_root / "eval")
    if "baseline" not in results:
        raise DataError(f"no baseline results under {metrics_root / 'eval'}: run `dvc repro evaluate@baseline` first")
    pool_sets(results, ev.pooled, ev.bootstrap_samples, ev.seed)
    members = {m for group in ev.pooled.values() for m in group}
    tested = [s for s in (*ev.sets, *ev.pooled) if s not in members]
    parents = {f"stage2_{name}": str(spec["from"]) for name, spec in params.rounds.items()}
    models = {name: entry.model_dump() for name, entry in ev.models.items()}
    comparisons = compare(
        results, comparison_pairs(models, parents), tested, ev.bootstrap_samples, ev.seed, ev.correction
    )
    timing_path = metrics_root / "timing.json"
    timing = read_json(timing_path) if timing_path.is_file() else None
    headline_set = next(iter(ev.pooled), tested[-1])
    return Analysis(results, comparisons, stage_figures(metrics_root, params), timing, headline_set)


def shown_params(params_path: Path, params: Params) -> dict[str, Any]:
    """The params file as the report shows it: as written, with the evaluate block as validated."""
    raw = yaml.safe_load(params_path.read_text())
    raw["evaluate"] = params.evaluate.model_dump()
    return raw
