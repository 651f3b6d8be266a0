"""The report's charts, as PNG files that need no network to view (`dvc plots show` draws the CSVs)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simrag.jsonio import atomic_open, write_json
from simrag.report import HEADLINE, METRICS, Analysis, Results, summary_rows

if TYPE_CHECKING:
    from simrag.config import Params
    from simrag.synthetic_qa import QARoundMetrics


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)


def plot_metrics(rows: list[dict[str, Any]], path: Path) -> None:
    """Bars of each metric per model with their 95% CIs, one panel per evaluation set."""
    plt = _pyplot()
    sets = list(dict.fromkeys(r["set"] for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(len(sets), 1, figsize=(10, 3.2 * len(sets)), squeeze=False)
    width = 0.8 / max(len(models), 1)
    for ax, set_name in zip(axes[:, 0], sets, strict=True):
        metrics = [m for m in METRICS if any(r["set"] == set_name and r["metric"] == m for r in rows)]
        for j, model in enumerate(models):
            stats = [
                next((r for r in rows if r["set"] == set_name and r["metric"] == m and r["model"] == model), None)
                for m in metrics
            ]
            x = np.arange(len(metrics)) + j * width
            means = [s["mean"] if s else 0 for s in stats]
            errors = [
                [s["mean"] - s["ci_low"] if s else 0 for s in stats],
                [s["ci_high"] - s["mean"] if s else 0 for s in stats],
            ]
            ax.bar(x, means, width, yerr=errors, capsize=3, label=model)
        ax.set_xticks(
            np.arange(len(metrics)) + width * (len(models) - 1) / 2, [METRICS[m] for m in metrics], fontsize=8
        )
        ax.set_ylim(0, 1)
        ax.set_title(set_name)
        ax.legend(fontsize=8, loc="upper right")
    _save(fig, path)


def verdict_rows(rounds: dict[str, QARoundMetrics]) -> list[dict[str, Any]]:
    """One row per round and verdict (kept, or the reason a candidate was rejected) with its count."""
    rows = []
    for name, figures in rounds.items():
        rows.append({"round": name, "verdict": "kept", "count": figures["kept"]})
        rows += [{"round": name, "verdict": v, "count": n} for v, n in figures.get("rejected", {}).items()]
    return rows


def plot_verdicts(rows: list[dict[str, Any]], path: Path) -> None:
    """Candidates per verdict, a group of bars per round (log scale: kept is a few percent)."""
    plt = _pyplot()
    rounds = list(dict.fromkeys(r["round"] for r in rows))
    verdicts = list(dict.fromkeys(r["verdict"] for r in rows))
    counts = {(r["round"], r["verdict"]): r["count"] for r in rows}
    fig, ax = plt.subplots(figsize=(10, 3.6))
    width = 0.8 / max(len(rounds), 1)
    for j, name in enumerate(rounds):
        x = np.arange(len(verdicts)) + j * width
        ax.bar(x, [counts.get((name, v), 0) for v in verdicts], width, label=name)
    ax.set_xticks(np.arange(len(verdicts)) + width * (len(rounds) - 1) / 2, verdicts, rotation=20, fontsize=8)
    ax.set_yscale("symlog")
    ax.set_ylabel("candidates")
    ax.set_title("Synthetic QA: kept and rejected per reason")
    ax.legend(fontsize=8)
    _save(fig, path)


def score_rows(results: Results, indexes: dict[str, str]) -> list[dict[str, Any]]:
    """Every retrieval score of every question, once per index (its first model), with the rank of the hit."""
    rows, seen = [], set()
    for model, per_set in results.items():
        index = indexes.get(model, "?")
        if index in seen:
            continue
        seen.add(index)
        for set_name, data in per_set.items():
            for record in data["records"]:
                for rank, hit in enumerate(record["retrieved"], start=1):
                    rows.append({"index": index, "set": set_name, "rank": rank, "score": hit["score"]})
    return rows


def plot_scores(rows: list[dict[str, Any]], threshold: float, path: Path) -> None:
    """Histograms of the retrieval scores per index against the relevance threshold, one panel per set."""
    plt = _pyplot()
    sets = list(dict.fromkeys(r["set"] for r in rows))
    indexes = list(dict.fromkeys(r["index"] for r in rows))
    fig, axes = plt.subplots(1, max(len(sets), 1), figsize=(5 * max(len(sets), 1), 3.4), squeeze=False)
    bins = np.linspace(0.0, 1.0, 41)
    for ax, set_name in zip(axes[0], sets, strict=True):
        for index in indexes:
            scores = [r["score"] for r in rows if r["set"] == set_name and r["index"] == index]
            if scores:
                above = np.mean(np.array(scores) >= threshold)
                ax.hist(scores, bins=bins, histtype="step", linewidth=1.5, label=f"{index} ({above:.0%} ≥ threshold)")
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1)
        ax.set_xlabel("cosine score of a retrieved chunk (top-k)")
        ax.set_ylabel("hits")
        ax.set_title(set_name)
        ax.legend(fontsize=7)
    _save(fig, path)


def plot_forest(comparisons: list[dict[str, Any]], set_name: str, metrics: tuple[str, ...], path: Path) -> None:
    """Each model's paired difference from the baseline with its 95% CI, one panel per metric; a filled
    marker where the difference is significant after correction."""
    plt = _pyplot()
    rows = [r for r in comparisons if r["set"] == set_name and r["against"] == "baseline" and r["metric"] in metrics]
    shown = [m for m in metrics if any(r["metric"] == m for r in rows)]
    fig, axes = plt.subplots(1, max(len(shown), 1), figsize=(3.4 * max(len(shown), 1), 2.8), squeeze=False)
    for ax, metric in zip(axes[0], shown, strict=False):
        mine = [r for r in rows if r["metric"] == metric]
        y = np.arange(len(mine))[::-1]
        for yi, r in zip(y, mine, strict=True):
            ax.errorbar(
                r["diff"],
                yi,
                xerr=[[r["diff"] - r["ci_low"]], [r["ci_high"] - r["diff"]]],
                fmt="o",
                color="tab:blue",
                mfc="tab:blue" if r["significant"] else "white",
                capsize=3,
            )
        ax.axvline(0, color="grey", lw=0.8, ls="--")
        ax.set_yticks(y, [r["model"] for r in mine], fontsize=8)
        ax.set_title(METRICS[metric], fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
    if not shown:
        axes[0][0].text(0.5, 0.5, "no model to compare with the baseline", ha="center", va="center")
        axes[0][0].set_axis_off()
    fig.suptitle(f"Difference from the baseline on {set_name}, 95% CI (filled: adjusted p < 0.05)", fontsize=9)
    _save(fig, path)


def write_csv(path: Path, rows: list[dict[str, Any]], fields: list[str]) -> None:
    with atomic_open(path) as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def write_plots(analysis: Analysis, params: Params, plots_dir: Path) -> None:
    """The CSVs behind `dvc plots show` and the PNG charts, under `plots_dir`."""
    rows = summary_rows(analysis.results)
    verdicts = verdict_rows(analysis.figures["generate_qa"])
    indexes = {name: entry.index for name, entry in params.evaluate.models.items()}
    scores = score_rows(analysis.results, indexes)
    write_csv(plots_dir / "summary.csv", rows, ["model", "set", "metric", "mean", "ci_low", "ci_high"])
    write_csv(plots_dir / "qa_verdicts.csv", verdicts, ["round", "verdict", "count"])
    write_csv(plots_dir / "retrieval_scores.csv", scores, ["index", "set", "rank", "score"])
    write_json(plots_dir / "comparisons.json", analysis.comparisons)
    plot_forest(analysis.comparisons, analysis.headline_set, HEADLINE, plots_dir / "forest.png")
    plot_metrics(rows, plots_dir / "metrics.png")
    if verdicts:
        plot_verdicts(verdicts, plots_dir / "qa_verdicts.png")
    plot_scores(scores, params.retrieval.threshold, plots_dir / "retrieval_scores.png")
