"""Could a round's targets be the model's own answers? A probe of two alternatives to extractive targets.

    python benchmarks/probe_targets.py [--round r1] [--model stage1] [--n 48]

For `n` kept pairs of a round (drawn with seed 0), the round's writer model (an `evaluate.models` entry)
writes, greedily:

- `rag`: its own RAG answer to the pair's question, exactly as evaluation generates it (the target of
  rejection sampling: keep the model's answer when it holds the grounded one);
- `rewrite`: the extracted answer rewritten as a direct answer to the question (a target that opens on the
  question's subject, as the references do).

For each it prints how many hold the extracted answer (`simrag.qa_filter.answer_match` at least
stage2.min_answer_f1, the test the rounds use), how many hold half its words, how many were cut off, their
words and their similarity to the question (the index's embedder); and, for scale, the similarity of the
kept targets and of the DevOps references to their questions. It prints the CPU it ran on.
"""

import json
import random
from pathlib import Path

import click
import numpy as np

from simrag.config import load_params
from simrag.embedding import embed
from simrag.jsonio import read_jsonl
from simrag.machine import describe
from simrag.metrics import words
from simrag.models import load_generator
from simrag.qa_filter import answer_match
from simrag.rag import answer_questions, model_weights
from simrag.retrieval import Retriever
from simrag.synthetic_qa import Writer

REWRITE_PROMPT = (
    "Question: {question}\n\nFact from the documentation: {answer}\n\n"
    "Answer the question in one or two sentences, using only this fact."
)
REFERENCES = ("data/raw/eval/devops_public.jsonl", "data/raw/eval/devops_dev.jsonl")


def _describe(model: object, questions: list[str], answers: list[str]) -> str:
    """Mean words of the answers and their mean cosine similarity to their questions."""
    vectors = embed(model, [t for pair in zip(questions, answers, strict=True) for t in pair], batch_size=64)
    similarity = np.mean([float(q @ a) for q, a in zip(vectors[0::2], vectors[1::2], strict=True)])
    return f"{np.mean([len(a.split()) for a in answers]):.1f} words, similarity to the question {similarity:.3f}"


@click.command()
@click.option("--round", "round_name", default="r1", help="the round whose kept pairs are probed")
@click.option("--model", "model_name", default="stage1", help="the evaluate.models entry that wrote them")
@click.option("--n", type=int, default=48)
@click.option("--rewrite-tokens", type=int, default=64)
def main(round_name: str, model_name: str, n: int, rewrite_tokens: int) -> None:
    params = load_params()
    kept = [r for r in read_jsonl(Path(f"data/qa/{round_name}.jsonl")) if r["verdict"] == "kept"]
    random.Random(0).shuffle(kept)
    kept = kept[:n]
    questions, extracts = [r["question"] for r in kept], [r["answer"] for r in kept]
    base = Path("data/models/base")
    entry, adapter = model_weights(params, model_name, base)
    generator = load_generator(base, adapter, params.model, name=model_name)
    retriever = Retriever.from_params(Path(entry.index), params)
    print(describe())

    rag = answer_questions(generator, retriever, questions, params.generation)
    own = {
        "rag": (
            [g.text for g in rag.generations],
            [g.n_tokens >= params.generation.max_new_tokens for g in rag.generations],
            rag.seconds,
        )
    }
    writer = Writer(generator, rewrite_tokens, params.stage2.write_batch_size, params.generation)
    replies = writer.ask(
        [REWRITE_PROMPT.format(question=q, answer=a) for q, a in zip(questions, extracts, strict=True)], rewrite_tokens
    )
    own["rewrite"] = ([t for t, _ in replies], [cut for _, cut in replies], writer.seconds)

    print(f"{len(kept)} kept pairs of {round_name}, written by {model_name}")
    print(f"  extracted targets: {_describe(retriever.model, questions, extracts)}")
    references = [r for path in REFERENCES if Path(path).exists() for r in read_jsonl(Path(path))]
    if references:
        ref_questions, ref_answers = [r["question"] for r in references], [r["reference_answer"] for r in references]
        print(f"  DevOps references ({len(references)}): {_describe(retriever.model, ref_questions, ref_answers)}")
    for kind, (texts, cuts, seconds) in own.items():
        pairs = list(zip(extracts, texts, strict=True))
        holds = sum(answer_match(a, t) >= params.stage2.min_answer_f1 for a, t in pairs)
        half = sum(len(set(words(a)) & set(words(t))) >= 0.5 * len(set(words(a))) for a, t in pairs)
        print(
            f"  {kind}: holds the extracted answer {holds} of {len(texts)}, half its words {half}, "
            f"cut off {sum(cuts)}, {seconds / len(texts):.1f} s each; {_describe(retriever.model, questions, texts)}"
        )
    for q, a, r, w in list(zip(questions, extracts, own["rag"][0], own["rewrite"][0], strict=True))[:3]:
        print(json.dumps({"question": q, "extracted": a, "rag": r, "rewrite": w}, ensure_ascii=False))


if __name__ == "__main__":
    main()
