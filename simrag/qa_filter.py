"""Checks on synthetic QA pairs: is the answer in a text, does the question copy its passage, is the
output degenerate, is a question a near-duplicate. Pure functions over strings, shared by the filter
of `generate_qa` and its tests."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from simrag.metrics import content_words, normalize_answer, words


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


# --- answers that teach nothing -------------------------------------------------------------------

# Questions that ask for one thing by name: a short answer (a flag, a command, a number) is a real answer.
_ASKS_FOR_A_NAME = re.compile(
    r"^\s*(?:which|who|when|where|how (?:many|much|long|often)|what (?:is|are) the (?:name|default|value|"
    r"port|version|command|flag|option|file|path|method|function|class|module|keyword|variable|type|format|"
    r"key|setting|status|exit code)s?\b|what (?:command|flag|option|file|port|method|function|class|module|"
    r"keyword|variable|type|setting|value|version|tool)s?\b)",
    re.IGNORECASE,
)
# Answers that look like a literal: code, an option, a path, a number, a version.
_LITERAL = re.compile(r"[`_/=\\<>{}()\[\]$@]|^-{1,2}\w|\d|\w\.\w|[a-z][A-Z]")


def answer_in_question(answer: str, question: str) -> bool:
    """The question gives its answer away: the normalised answer occurs in it, or at least half of the
    answer's content words do (e.g. "What is the asyncio module?" -> "asyncio")."""
    ans, q = normalize_answer(answer), normalize_answer(question)
    if ans and any(q[i : i + len(ans)] == ans for i in range(len(q) - len(ans) + 1)):
        return True
    answer_words = set(content_words(answer))
    if not answer_words:
        return False
    return len(answer_words & set(content_words(question))) >= len(answer_words) / 2


def heading_answer(answer: str, question: str, chunk: str) -> bool:
    """The answer is a heading or a label rather than an answer.

    - it ends with ":" (a lead-in: "To delete a project, do the following:");
    - it is a whole line of the chunk marked as a heading ("## Clean-up"), or a short line standing alone
      in Title Case;
    - or it has fewer than two content words, unless it is a literal (a flag, a command, a path, a number,
      a name in code) or the question asks for one thing by name ("Which command ...?", "How many ...?").
    """
    text = answer.strip().strip("\"'").strip()
    if not text:
        return True
    if text.endswith(":"):
        return True
    bare = text.rstrip(".").strip().lower()
    for line in chunk.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") and stripped.lstrip("#").strip().rstrip(".").lower() == bare:
            return True
    n_content = len(content_words(text))
    title_case = len(text.split()) <= 6 and not text.endswith(".") and all(w[0].isupper() for w in text.split())
    if title_case and not _LITERAL.search(text) and not _ASKS_FOR_A_NAME.search(question):
        return True
    if n_content >= 2:
        return False
    return not (_LITERAL.search(text) or _ASKS_FOR_A_NAME.search(question))
