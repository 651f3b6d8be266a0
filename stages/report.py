"""DVC stage `report`: compare the evaluated models -> reports/results.md, metrics/summary.json and plots.

Reads data/eval/ and metrics/eval/ (what `evaluate` wrote), metrics/timing.json and the figures the other
stages left under metrics/ (synthetic QA per round, retriever adaptation, time and memory). Writes the
report, the headline numbers, the CSVs behind `dvc plots show` and PNG charts under plots/eval/.
"""

import csv
from pathlib import Path
from typing import Any

import click
import yaml

from simrag.config import load_params
from simrag.errors import DataError
from simrag.jsonio import atomic_open, read_json, write_json
from simrag.report import (
    HEADLINE,
    compare,
    comparison_pairs,
    headline_summary,
    load_results,
    markdown,
    pool_sets,
    stage_figures,
    summary_rows,
)
from simrag.report_figures import plot_forest, plot_metrics, plot_scores, plot_verdicts, score_rows, verdict_rows
from simrag.stage import stage


def write_csv(path: Path, rows: list[dict[str, Any]], fields: list[str]) -> None:
    with atomic_open(path) as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


@click.command()
@click.option("--params", "params_path", type=click.Path(path_type=Path), default="params.yaml", show_default=True)
@click.option("--records", "records_dir", type=click.Path(path_type=Path), default="data/eval", show_default=True)
@click.option("--metrics", "metrics_root", type=click.Path(path_type=Path), default="metrics", show_default=True)
@click.option("--report", "report_path", type=click.Path(path_type=Path), default="reports/results.md")
@click.option("--plots", "plots_dir", type=click.Path(path_type=Path), default="plots/eval", show_default=True)
@stage("report")
def main(params_path: Path, records_dir: Path, metrics_root: Path, report_path: Path, plots_dir: Path) -> str:
    params = load_params(params_path)
    ev = params.evaluate
    results = load_results(list(ev.models), list(ev.sets), records_dir, metrics_root / "eval")
    if "baseline" not in results:
        raise DataError(f"no baseline results under {metrics_root / 'eval'}: run `dvc repro evaluate@baseline` first")
    pool_sets(results, ev.pooled, ev.bootstrap_samples, ev.seed)
    members = {m for group in ev.pooled.values() for m in group}
    tested = [s for s in (*ev.sets, *ev.pooled) if s not in members]  # a pooled set is tested, not its members
    parents = {f"stage2_{name}": str(spec["from"]) for name, spec in params.rounds.items()}
    models = {name: entry.model_dump() for name, entry in ev.models.items()}
    pairs = comparison_pairs(models, parents)
    comparisons = compare(results, pairs, tested, ev.bootstrap_samples, ev.seed, ev.correction)
    figures = stage_figures(metrics_root, params)
    timing_path = metrics_root / "timing.json"
    timing = read_json(timing_path) if timing_path.is_file() else None
    raw_params = yaml.safe_load(params_path.read_text())
    raw_params["evaluate"] = ev.model_dump()
    indexes = {name: entry.index for name, entry in ev.models.items()}
    rows = summary_rows(results)
    verdicts = verdict_rows(figures["generate_qa"])
    scores = score_rows(results, indexes)
    headline_set = next(iter(ev.pooled), tested[-1])
    with atomic_open(report_path) as handle:
        handle.write(markdown(results, comparisons, raw_params, figures, timing))
    write_json(metrics_root / "summary.json", headline_summary(results, comparisons))
    write_csv(plots_dir / "summary.csv", rows, ["model", "set", "metric", "mean", "ci_low", "ci_high"])
    write_csv(plots_dir / "qa_verdicts.csv", verdicts, ["round", "verdict", "count"])
    write_csv(plots_dir / "retrieval_scores.csv", scores, ["index", "set", "rank", "score"])
    write_json(plots_dir / "comparisons.json", comparisons)
    plot_forest(comparisons, headline_set, HEADLINE, plots_dir / "forest.png")
    plot_metrics(rows, plots_dir / "metrics.png")
    if verdicts:
        plot_verdicts(verdicts, plots_dir / "qa_verdicts.png")
    plot_scores(scores, params.retrieval.threshold, plots_dir / "retrieval_scores.png")
    return f"{len(results)} models, {len(comparisons)} comparisons -> {report_path}"


if __name__ == "__main__":
    main()
