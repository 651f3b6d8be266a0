"""DVC stage `report`: compare every evaluated model with the baseline -> reports/results.md and plots.

Reads data/eval/ and metrics/eval/ (what `evaluate` wrote) and the figures the other stages left under
metrics/ (synthetic QA per round, retriever adaptation, time and memory). Writes the report, the CSVs
behind `dvc plots show` and PNG charts under plots/eval/.
"""

import csv
from pathlib import Path
from typing import Any

import click
import yaml

from simrag.config import load_params
from simrag.errors import DataError
from simrag.jsonio import atomic_open, write_json
from simrag.report import compare, load_results, markdown, stage_figures, summary_rows
from simrag.report_figures import plot_metrics, plot_scores, plot_verdicts, score_rows, verdict_rows
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
    comparisons = compare(results, ev.bootstrap_samples, ev.seed)
    figures = stage_figures(metrics_root, params)
    raw_params = yaml.safe_load(params_path.read_text())
    raw_params["evaluate"]["models"] = {name: entry.model_dump() for name, entry in ev.models.items()}
    indexes = {name: entry.index for name, entry in ev.models.items()}
    rows = summary_rows(results)
    verdicts = verdict_rows(figures["generate_qa"])
    scores = score_rows(results, indexes)
    with atomic_open(report_path) as handle:
        handle.write(markdown(results, comparisons, raw_params, figures))
    write_csv(plots_dir / "summary.csv", rows, ["model", "set", "metric", "mean", "ci_low", "ci_high"])
    write_csv(plots_dir / "qa_verdicts.csv", verdicts, ["round", "verdict", "count"])
    write_csv(plots_dir / "retrieval_scores.csv", scores, ["index", "set", "rank", "score"])
    write_json(plots_dir / "comparisons.json", comparisons)
    plot_metrics(rows, plots_dir / "metrics.png")
    if verdicts:
        plot_verdicts(verdicts, plots_dir / "qa_verdicts.png")
    plot_scores(scores, params.retrieval.threshold, plots_dir / "retrieval_scores.png")
    return f"{len(results)} models, {len(comparisons)} comparisons -> {report_path}"


if __name__ == "__main__":
    main()
