"""Evaluation metrics: the paper's, reference-based ones, and the statistics that compare models.

All are pure functions of strings and numbers, so each can be checked by hand.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

import numpy as np

_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
# The paper's refusal detection: phrases that mean the model declined to answer.
REFUSALS = (
    "i don't know",
    "i do not know",
    "cannot answer",
    "can't answer",
    "unable to",
    "not able to",
    "no information",
    "does not contain",
    "doesn't contain",
    "not mentioned",
    "not provided",
)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("’", "'"))


def long_words(text: str, min_len: int = 4) -> set[str]:
    """Distinct words of at least `min_len` letters: the paper's unit of overlap."""
    return {w for w in words(text) if len(w) >= min_len}


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


def answer_quality(answer: str, context: str, question: str) -> float:
    """The reproduction paper's rule-based score in [0, 1]: the mean of four parts.

    - length: 0 empty, 0.5 under 20 characters, 0.7 over 500, else 1;
    - context overlap: answer words (4+ letters) found in the context, over max(answer words, 5), at most 1;
    - question overlap: question words (4+ letters) found in the answer, over max(question words, 3), at most 1;
    - 1 minus the refusal flag.
    An empty answer scores 0.
    """
    if not answer.strip():
        return 0.0
    answer_words = long_words(answer)
    question_words = long_words(question)
    context_words = long_words(context)
    context_overlap = min(1.0, len(answer_words & context_words) / max(len(answer_words), 5))
    question_overlap = min(1.0, len(question_words & answer_words) / max(len(question_words), 3))
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


def paired_comparison(
    model: Sequence[float], baseline: Sequence[float], samples: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """Difference of means (model - baseline) over the same questions, its paired-bootstrap CI,
    and the p-value of a two-sided Wilcoxon signed-rank test (1.0 when every pair is equal)."""
    from scipy.stats import wilcoxon

    a, b = np.asarray(model, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values differ in length: {len(a)} vs {len(b)}")
    diff = a - b
    ci = bootstrap_ci(diff, samples, seed, level)
    p_value = 1.0 if len(diff) == 0 or np.allclose(diff, 0) else float(wilcoxon(a, b, zero_method="zsplit").pvalue)
    return {"diff": ci["mean"], "ci_low": ci["ci_low"], "ci_high": ci["ci_high"], "p_value": p_value, "n": ci["n"]}
