"""DVC stage `evaluate@<model>`: answer every evaluation set with one model and score it.

Writes data/eval/<model>/<set>.jsonl (one record per question) and metrics/eval/<model>/<set>.json.
"""

from pathlib import Path

import click

from simrag.config import load_params
from simrag.evaluation import evaluate_model
from simrag.jsonio import atomic_dir, write_json, write_jsonl
from simrag.machine import peak_rss_mb
from simrag.stage import stage


@click.command()
@click.option("--model", "model_name", required=True, help="Name of the model, a key of evaluate.models.")
@click.option("--weights", type=click.Path(path_type=Path), required=True, help="The base folder or a LoRA adapter.")
@click.option("--params", "params_path", type=click.Path(path_type=Path), default="params.yaml", show_default=True)
@click.option("--base", type=click.Path(path_type=Path), default="data/models/base", show_default=True)
@click.option("--index", "index_dir", type=click.Path(path_type=Path), default="data/index", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default="data/eval", show_default=True)
@click.option("--metrics", "metrics_dir", type=click.Path(path_type=Path), default="metrics/eval", show_default=True)
@stage("evaluate")
def main(
    model_name: str, weights: Path, params_path: Path, base: Path, index_dir: Path, out: Path, metrics_dir: Path
) -> str:
    results = evaluate_model(load_params(params_path), model_name, weights, base, index_dir)
    peak = peak_rss_mb()  # of the whole stage, every set evaluated
    # Written only once every set is done: a failure leaves no partial results behind.
    with atomic_dir(out / model_name) as records_dir, atomic_dir(metrics_dir / model_name) as summary_dir:
        for set_name, (records, summary) in results.items():
            write_jsonl(records_dir / f"{set_name}.jsonl", records)
            write_json(summary_dir / f"{set_name}.json", {**summary, "peak_memory_mb": peak})
    return ", ".join(
        f"{name}: quality {s['answer_quality']['mean']:.3f}, relevance {s['context_relevance']['mean']:.3f}"
        + (f", similarity {s['answer_similarity']['mean']:.3f}" if "answer_similarity" in s else "")
        for name, (_, s) in results.items()
    )


if __name__ == "__main__":
    main()
