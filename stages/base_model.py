"""DVC stage `base_model`: the generator named by model.base -> data/models/base (safetensors + tokenizer)."""

from pathlib import Path

import click

from simrag.config import load_params
from simrag.jsonio import write_json
from simrag.machine import peak_rss_mb
from simrag.models import materialize_base
from simrag.stage import stage


@click.command()
@click.option("--params", "params_path", type=click.Path(path_type=Path), default="params.yaml", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default="data/models/base", show_default=True)
@click.option("--metrics", "metrics_path", type=click.Path(path_type=Path), default="metrics/base_model.json")
@stage("base_model")
def main(params_path: Path, out: Path, metrics_path: Path) -> str:
    params = load_params(params_path)
    facts = materialize_base(params.model.base, out)
    write_json(metrics_path, {**facts, "peak_memory_mb": peak_rss_mb()})
    return f"{facts['source']}: {facts['parameters']:,} parameters, {facts['size_mb']} MB"


if __name__ == "__main__":
    main()
