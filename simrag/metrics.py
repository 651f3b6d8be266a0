"""Evaluation metrics: the paper's, reference-based ones, and the statistics that compare models.

All are pure functions of strings and numbers, so each can be checked by hand.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
# The paper's refusal phrases: an answer holding any of them (lowercased) declined to answer.
REFUSALS = (
    "don't know",
    "do not know",
    "cannot answer",
    "can't answer",
    "no information",
    "not sure",
    "unclear",
    "i'm sorry",
    "i apologize",
    "unable to",
)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)
# Frequent English words that carry no content.
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had has
    have having he her here hers him his how i if in into is it its itself just let me more most my no
    nor not now of off on once only or other our out over own same she should so some such than that the
    their them then there these they this those through to too under until up very was we were what when
    where which while who whom why will with would you your yours one use used using may might must
    shall""".split()  # noqa: SIM905
)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("’", "'"))


def long_words(text: str, min_len: int = 4) -> set[str]:
    """Distinct words of at least `min_len` letters: the unit of groundedness."""
    return {w for w in words(text) if len(w) >= min_len}


def content_words(text: str) -> list[str]:
    """The words of `text` that carry content: not stopwords, at least 3 characters or holding a digit."""
    return [w for w in words(text) if w not in STOPWORDS and (len(w) >= 3 or any(ch.isdigit() for ch in w))]


# --- the paper's metrics ---------------------------------------------------------------


def context_relevance(scores: Sequence[float]) -> float:
    """Mean cosine similarity between the query and each retrieved chunk (0 with no hits)."""
    return float(np.mean(scores)) if len(scores) else 0.0


def length_score(answer: str) -> float:
    n = len(answer.strip())
    if n == 0:
        return 0.0
    if n < 20:
        return 0.5
    if n > 500:
        return 0.7
    return 1.0


def is_refusal(answer: str) -> bool:
    text = answer.lower().replace("’", "'")
    return any(phrase in text for phrase in REFUSALS)


def paper_tokens(text: str) -> set[str]:
    """The paper's unit: whitespace-separated words longer than 3 characters, lowercased, punctuation kept."""
    return {w for w in text.lower().split() if len(w) > 3}


def answer_quality(answer: str, context: str, question: str) -> float:
    """The reproduction paper's rule-based score in [0, 1], exactly: the mean of four parts.

    - length: 0 for an empty (stripped) answer, 0.5 under 20 characters, 0.7 over 500, else 1;
    - context overlap: |answer ∩ context| / max(|answer|, 5), at most 1, and 0 when either side is empty;
    - question overlap: |question ∩ answer| / max(|question|, 3), at most 1, and 0 when either side is empty;
    - not-refusal: 0 when the answer holds a refusal phrase (REFUSALS), else 1.
    Tokens are `paper_tokens`. An empty answer scores 0.25 (it refuses nothing).
    """
    answer_words, context_words, question_words = paper_tokens(answer), paper_tokens(context), paper_tokens(question)
    context_overlap = (
        min(1.0, len(answer_words & context_words) / max(len(answer_words), 5))
        if answer_words and context_words
        else 0.0
    )
    question_overlap = (
        min(1.0, len(question_words & answer_words) / max(len(question_words), 3))
        if answer_words and question_words
        else 0.0
    )
    return (length_score(answer) + context_overlap + question_overlap + (0.0 if is_refusal(answer) else 1.0)) / 4


# --- reference-based metrics --------------------------------------------------------------


def normalize_answer(text: str) -> list[str]:
    """SQuAD-style: lower case, no punctuation, no articles, split on whitespace."""
    text = _ARTICLES.sub(" ", text.lower().translate(_PUNCT))
    return text.split()


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalize_answer(prediction), normalize_answer(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def _lcs_length(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 on normalised tokens (longest common subsequence)."""
    pred, ref = normalize_answer(prediction), normalize_answer(reference)
    if not pred or not ref:
        return float(pred == ref)
    lcs = _lcs_length(pred, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def evidence_recall(answer: str, evidence: str) -> float:
    """Share of the evidence passage's distinct content words that the answer contains (0 when the
    evidence has none)."""
    wanted = set(content_words(evidence))
    if not wanted:
        return 0.0
    return len(wanted & set(content_words(answer))) / len(wanted)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors (0 when either is all zeros)."""
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b) / norm) if norm else 0.0


def gold_rank(retrieved_docs: Sequence[str], gold_doc: str) -> int | None:
    """1-based rank of the first chunk from the gold document, or None."""
    return next((i for i, doc in enumerate(retrieved_docs, start=1) if doc == gold_doc), None)


def recall_at_k(retrieved_docs: Sequence[str], gold_doc: str, k: int) -> float:
    rank = gold_rank(retrieved_docs, gold_doc)
    return float(rank is not None and rank <= k)


def reciprocal_rank(retrieved_docs: Sequence[str], gold_doc: str) -> float:
    rank = gold_rank(retrieved_docs, gold_doc)
    return 1.0 / rank if rank else 0.0


def groundedness(answer: str, context: str) -> float:
    """Share of the answer's content words (4+ letters) found in the retrieved context; 0 when it has none."""
    answer_words = long_words(answer)
    if not answer_words:
        return 0.0
    return len(answer_words & long_words(context)) / len(answer_words)


# --- statistics ---------------------------------------------------------------------------


def bootstrap_ci(
    values: Sequence[float] | np.ndarray, samples: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """Mean with a percentile-bootstrap confidence interval, and n."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return {"mean": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": 0}
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(samples, len(x)))].mean(axis=1)
    alpha = (1 - level) / 2
    return {
        "mean": float(x.mean()),
        "ci_low": float(np.quantile(means, alpha)),
        "ci_high": float(np.quantile(means, 1 - alpha)),
        "n": len(x),
    }


def summarise(values: Sequence[float], bootstrap: tuple[int, int]) -> dict[str, float]:
    """`bootstrap_ci` of `values` with (resamples, seed) = `bootstrap`, its figures rounded to 4 places."""
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in bootstrap_ci(values, *bootstrap).items()}


def echo_summary(records: Sequence[Mapping[str, Any]], bootstrap: tuple[int, int]) -> dict[str, Any]:
    """The question echo's metrics over evaluation records (`summarise` each); empty where none has one."""
    echoed = [r["question_echo"] for r in records if "question_echo" in r]
    names = dict.fromkeys(name for echo in echoed for name in echo)
    return {name: summarise([echo[name] for echo in echoed if name in echo], bootstrap) for name in names}


def sign_flip_p_value(diff: Sequence[float] | np.ndarray, samples: int = 10_000, seed: int = 0) -> float:
    """Two-sided p-value of a paired sign-flip (permutation) test of mean difference 0: the share of
    random sign flips whose mean is at least as far from 0 as the observed one. Its statistic is the mean
    difference, the statistic of the bootstrap CI, so the two tell the same story. Exact for n <= 16."""
    d = np.asarray(diff, dtype=np.float64)
    if len(d) == 0 or np.allclose(d, 0):
        return 1.0
    observed = abs(d.mean())
    if len(d) <= 16:
        signs = np.array(np.meshgrid(*[[1.0, -1.0]] * len(d))).reshape(len(d), -1).T
    else:
        rng = np.random.default_rng(seed)
        signs = rng.choice([1.0, -1.0], size=(samples, len(d)))
    means = np.abs(signs @ d) / len(d)
    # the observed flip counts too (+1), so a p-value is never 0
    extreme = int(np.sum(means >= observed - 1e-12))
    return float((extreme + (len(d) > 16)) / (len(means) + (len(d) > 16)))


def paired_comparison(
    model: Sequence[float], baseline: Sequence[float], samples: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """Difference of means (model - baseline) over the same questions, its paired-bootstrap CI, and the
    p-value of a paired sign-flip test of the same mean difference (`sign_flip_p_value`)."""
    a, b = np.asarray(model, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values differ in length: {len(a)} vs {len(b)}")
    diff = a - b
    ci = bootstrap_ci(diff, samples, seed, level)
    p_value = sign_flip_p_value(diff, seed=seed)
    return {"diff": ci["mean"], "ci_low": ci["ci_low"], "ci_high": ci["ci_high"], "p_value": p_value, "n": ci["n"]}


def adjust_p_values(p_values: Sequence[float], method: str = "holm") -> list[float]:
    """p-values adjusted for multiple comparisons: Holm's step-down (family-wise error), Benjamini-Hochberg
    (`bh`, false discovery rate, as scipy.stats.false_discovery_control) or `none`."""
    p = np.asarray(p_values, dtype=np.float64)
    if len(p) == 0 or method == "none":
        return p.tolist()
    if method == "bh":
        from scipy.stats import false_discovery_control

        return false_discovery_control(p, method="bh").tolist()
    if method != "holm":
        raise ValueError(f"unknown correction {method!r}: holm, bh or none")
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()
