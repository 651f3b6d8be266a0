"""Checks on synthetic QA pairs: is the answer in a text, does the question copy its passage, is the
output degenerate, is a question a near-duplicate. Pure functions over strings, shared by the filter
of `generate_qa` and its tests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from simrag.metrics import normalize_answer, words


def answer_match(answer: str, text: str) -> float:
    """How well `text` contains `answer`: 1.0 when the normalised answer occurs in it word for word,
    else the best token F1 between the answer and any window of the text as long as the answer."""
    ans, doc = normalize_answer(answer), normalize_answer(text)
    if not ans or not doc:
        return 0.0
    n = len(ans)
    if any(doc[i : i + n] == ans for i in range(len(doc) - n + 1)):
        return 1.0
    want = Counter(ans)
    best = 0.0
    for start in range(max(1, len(doc) - n + 1)):
        window = doc[start : start + n]
        common = sum((Counter(window) & want).values())
        if common:
            precision, recall = common / len(window), common / n
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def copy_share(question: str, passage: str) -> float:
    """The longest run of the question's words found verbatim in the passage, as a share of the question."""
    q, p = words(question), words(passage)
    if not q or not p:
        return 0.0
    longest = 0
    previous = [0] * (len(p) + 1)
    for qi in range(1, len(q) + 1):
        current = [0] * (len(p) + 1)
        for pi in range(1, len(p) + 1):
            if q[qi - 1] == p[pi - 1]:
                current[pi] = previous[pi - 1] + 1
                longest = max(longest, current[pi])
        previous = current
    return longest / len(q)


def is_repetitive(text: str, n: int = 3, max_repeats: int = 2) -> bool:
    """True when some word n-gram occurs more than `max_repeats` times: the loop of a degenerate output."""
    tokens = words(text)
    grams = Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return bool(grams) and max(grams.values()) > max_repeats


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of the two texts' word sets."""
    wa, wb = set(words(a)), set(words(b))
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / len(wa | wb)


def is_near_duplicate(question: str, kept: Sequence[str], threshold: float) -> bool:
    return any(similarity(question, other) >= threshold for other in kept)
