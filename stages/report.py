"""DVC stage `report`: compare the evaluated models -> reports/results.md, metrics/summary.json and plots.

Reads data/eval/ and metrics/eval/ (what `evaluate` wrote), metrics/timing.json and the figures the other
stages left under metrics/ (synthetic QA per round, retriever adaptation, time and memory). Writes the
report, the headline numbers, the CSVs behind `dvc plots show` and PNG charts under plots/eval/.
"""

from pathlib import Path

import click

from simrag.config import load_params
from simrag.jsonio import atomic_open, write_json
from simrag.report import analyse, headline_summary, markdown, shown_params
from simrag.report_figures import write_plots
from simrag.stage import stage


@click.command()
@click.option("--params", "params_path", type=click.Path(path_type=Path), default="params.yaml", show_default=True)
@click.option("--records", "records_dir", type=click.Path(path_type=Path), default="data/eval", show_default=True)
@click.option("--metrics", "metrics_root", type=click.Path(path_type=Path), default="metrics", show_default=True)
@click.option("--report", "report_path", type=click.Path(path_type=Path), default="reports/results.md")
@click.option("--plots", "plots_dir", type=click.Path(path_type=Path), default="plots/eval", show_default=True)
@stage("report")
def main(params_path: Path, records_dir: Path, metrics_root: Path, report_path: Path, plots_dir: Path) -> str:
    params = load_params(params_path)
    analysis = analyse(params, records_dir, metrics_root)
    with atomic_open(report_path) as handle:
        handle.write(
            markdown(
                analysis.results,
                analysis.comparisons,
                shown_params(params_path, params),
                analysis.figures,
                analysis.timing,
            )
        )
    write_json(metrics_root / "summary.json", headline_summary(analysis.results, analysis.comparisons))
    write_plots(analysis, params, plots_dir)
    return f"{len(analysis.results)} models, {len(analysis.comparisons)} comparisons -> {report_path}"


if __name__ == "__main__":
    main()
