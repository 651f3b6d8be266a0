"""DVC stage `report`: compare every evaluated model with the baseline -> reports/results.md and plots."""

import csv
from pathlib import Path

import click
import yaml

from simrag.config import load_params
from simrag.errors import DataError
from simrag.jsonio import atomic_open, write_json
from simrag.report import compare, load_results, markdown, plot_metrics, summary_rows
from simrag.stage import stage


@click.command()
@click.option("--params", "params_path", type=click.Path(path_type=Path), default="params.yaml", show_default=True)
@click.option("--records", "records_dir", type=click.Path(path_type=Path), default="data/eval", show_default=True)
@click.option("--metrics", "metrics_dir", type=click.Path(path_type=Path), default="metrics/eval", show_default=True)
@click.option("--report", "report_path", type=click.Path(path_type=Path), default="reports/results.md")
@click.option("--plots", "plots_dir", type=click.Path(path_type=Path), default="plots/eval", show_default=True)
@stage("report")
def main(params_path: Path, records_dir: Path, metrics_dir: Path, report_path: Path, plots_dir: Path) -> str:
    params = load_params(params_path)
    ev = params.evaluate
    results = load_results(list(ev.models), list(ev.sets), records_dir, metrics_dir)
    if "baseline" not in results:
        raise DataError(f"no baseline results under {metrics_dir}: run `dvc repro evaluate@baseline` first")
    comparisons = compare(results, ev.bootstrap_samples, ev.seed)
    rows = summary_rows(results)
    raw_params = yaml.safe_load(params_path.read_text())
    with atomic_open(report_path) as handle:
        handle.write(markdown(results, comparisons, raw_params))
    with atomic_open(plots_dir / "summary.csv") as handle:
        writer = csv.DictWriter(handle, fieldnames=["model", "set", "metric", "mean", "ci_low", "ci_high"])
        writer.writeheader()
        writer.writerows(rows)
    write_json(plots_dir / "comparisons.json", comparisons)
    plot_metrics(rows, plots_dir / "metrics.png")
    return f"{len(results)} models, {len(comparisons)} comparisons -> {report_path}"


if __name__ == "__main__":
    main()
