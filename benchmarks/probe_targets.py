"""Could a round's targets be the model's own answers? A probe of two alternatives to extractive targets.

    python benchmarks/probe_targets.py [--round r1] [--model stage1] [--n 48]

For `n` kept pairs of a round (drawn with seed 0), the round's writer model (an `evaluate.models` entry)
writes, greedily:

- `rag`: its own RAG answer to the pair's question, exactly as evaluation generates it (the target of
  rejection sampling: keep the model's answer when it holds the grounded one);
- `rewrite`: the extracted answer rewritten as a direct answer to the question (a target that opens on the
  question's subject, as the references do);
- `oracle`: its answer from the answer's own chunk alone, in the evaluation prompt (a target for context
  distillation: the model answers with the right passage, and would be taught to do so from the retrieved ones).

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
from simrag.generation import generate
from simrag.jsonio import read_jsonl
from simrag.machine import describe
from simrag.metrics import cosine, words
from simrag.models import load_generator
from simrag.prompting import fit_passages, rag_messages, render
from simrag.qa_filter import answer_match
from simrag.rag import answer_questions, model_weights
from simrag.records import read_chunks
from simrag.retrieval import Retriever
from simrag.synthetic_qa import Writer

REWRITE_PROMPT = (
    "Question: {question}\n\nFact from the documentation: {answer}\n\n"
    "Answer the question in one or two sentences, using only this fact."
)
REFERENCES = ("data/raw/eval/devops_public.jsonl", "data/raw/eval/devops_dev.jsonl")


def _similarity(model: object, firsts: list[str], seconds: list[str]) -> float:
    """Mean cosine similarity of each text to its counterpart (the index's embedder)."""
    vectors = embed(model, [t for pair in zip(firsts, seconds, strict=True) for t in pair], batch_size=64)
    return float(np.mean([cosine(a, b) for a, b in zip(vectors[0::2], vectors[1::2], strict=True)]))


def _describe(model: object, questions: list[str], answers: list[str]) -> str:
    """Mean words of the answers and their mean cosine similarity to their questions."""
    words_each = np.mean([len(a.split()) for a in answers])
    return f"{words_each:.1f} words, similarity to the question {_similarity(model, questions, answers):.3f}"


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
    sources = {c["id"]: c["text"] for c in read_chunks(Path("data/processed/chunks.jsonl"))}
    tokenizer, settings = generator.tokenizer, params.generation
    prompts = [
        render(
            tokenizer,
            rag_messages(r["question"], fit_passages([sources[r["chunk_id"]]], tokenizer, settings.max_context_tokens)),
        )
        for r in kept
    ]
    oracle = generate(generator, prompts, settings.max_new_tokens, settings.repetition_penalty, settings.batch_size)
    own["oracle"] = (
        [g.text for g in oracle],
        [g.n_tokens >= settings.max_new_tokens for g in oracle],
        sum(g.seconds for g in oracle),
    )

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
            f"cut off {sum(cuts)}, {seconds / len(texts):.1f} s each; {_describe(retriever.model, questions, texts)}, "
            f"to the extracted answer {_similarity(retriever.model, extracts, texts):.3f}"
        )
    for i in range(3):
        print(
            json.dumps(
                {"question": questions[i], "extracted": extracts[i], **{k: v[0][i] for k, v in own.items()}},
                ensure_ascii=False,
            )
        )


if __name__ == "__main__":
    main()
