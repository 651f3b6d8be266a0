"""DVC stage `timing`: per-query response time at batch 1, every evaluated model interleaved in one
process on the first questions of the first evaluation set -> metrics/timing.json."""

from pathlib import Path

import click

from simrag.config import load_params
from simrag.evaluation import load_questions
from simrag.jsonio import write_json
from simrag.machine import describe, peak_rss_mb
from simrag.models import adapter_of, load_generator
from simrag.retrieval import Retriever
from simrag.stage import stage
from simrag.timing import interleaved_times


@click.command()
@click.option("--params", "params_path", type=click.Path(path_type=Path), default="params.yaml", show_default=True)
@click.option("--base", type=click.Path(path_type=Path), default="data/models/base", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default="metrics/timing.json", show_default=True)
@stage("timing")
def main(params_path: Path, base: Path, out: Path) -> str:
    params = load_params(params_path)
    set_name, path = next(iter(params.evaluate.sets.items()))
    questions, _ = load_questions(Path(path), params.evaluate.timing_questions)
    retrievers: dict[str, Retriever] = {}
    models = {}
    for name, entry in params.evaluate.models.items():
        if entry.index not in retrievers:  # one retriever (index and embedder) per index, shared by its models
            retrievers[entry.index] = Retriever.from_params(Path(entry.index), params)
        retriever = retrievers[entry.index]
        generator = load_generator(base, adapter_of(entry.weights, base), params.model, name=name)
        models[name] = (generator, retriever)
    texts = [q["question"] for q in questions]
    samples, seed = params.evaluate.bootstrap_samples, params.evaluate.seed
    times = interleaved_times(models, texts, params.generation, samples, seed)
    write_json(
        out,
        {
            "set": set_name,
            "questions": len(questions),
            "machine": describe(),
            "peak_memory_mb": peak_rss_mb(),
            "models": times,
        },
    )
    return ", ".join(f"{name} {t['mean']:.2f} s" for name, t in times.items())


if __name__ == "__main__":
    main()
