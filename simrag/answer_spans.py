"""Candidate answers taken from a chunk's own text, for the `extractive` Stage 2 recipe.

SimRAG extracts answers first and then asks a question for each. A 135M model extracts poorly (most of
its "answers" are not in the chunk, or are headings), so this recipe picks them by rule: whole sentences
of the chunk's prose that say something. Left out are headings, navigation, table rows, code, and
sentences cut off by the chunk's borders. The answer is grounded by construction; the model only writes
the question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from simrag.metrics import content_words

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`\"'(\[])")
_BULLET = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")
_NAVIGATION = re.compile(
    r"\b(?:previous|next) (?:topic|page|chapter)\b|\btable of contents\b|\bcopyright\b|\ball rights reserved\b|"
    r"\bclick here\b|\bedit (?:this|on github)\b|\bskip to\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class SpanRules:
    """What makes a sentence a usable answer."""

    min_words: int = 8
    max_words: int = 45
    min_content_words: int = 4
    min_letter_share: float = 0.7  # letters and spaces among its characters: lower is code or a table


def prose_blocks(text: str) -> list[str]:
    """The paragraphs of a chunk that are prose: headings, indented code, tables and fenced code left out,
    each paragraph's lines joined with spaces."""
    blocks: list[str] = []
    in_fence = False
    for paragraph in re.split(r"\n\s*\n", text):
        lines = []
        for line in paragraph.splitlines():
            stripped = line.strip()
            if stripped.startswith("```"):
                in_fence = not in_fence
                continue
            if in_fence or not stripped or stripped.startswith(("#", "|", ">>>", "$ ", "=")):
                continue
            if line.startswith(("    ", "\t")):  # indented code
                continue
            lines.append(_BULLET.sub("", stripped))
        if lines:
            blocks.append(" ".join(lines))
    return blocks


def is_answer_sentence(sentence: str, rules: SpanRules) -> bool:
    n_words = len(sentence.split())
    if not rules.min_words <= n_words <= rules.max_words:
        return False
    if not sentence[0].isupper() and sentence[0] not in "`\"'(":  # starts mid-sentence: cut by the chunk
        return False
    if not sentence.endswith((".", "!")) or sentence.endswith(":"):  # a question, a heading, a lead-in
        return False
    if _NAVIGATION.search(sentence):
        return False
    letters = sum(ch.isalpha() or ch.isspace() for ch in sentence)
    if letters / len(sentence) < rules.min_letter_share:
        return False
    return len(set(content_words(sentence))) >= rules.min_content_words


def answer_spans(text: str, limit: int, rules: SpanRules | None = None) -> list[str]:
    """Up to `limit` answer sentences of the chunk `text`, the most informative first (most distinct
    content words; earlier first among equals). The chunk's first and last paragraphs count only when
    they start and end where a sentence does: a chunk border cuts sentences."""
    rules = rules or SpanRules()
    found: list[tuple[int, int, str]] = []
    for block in prose_blocks(text):
        for sentence in _SENTENCE_END.split(block):
            sentence = sentence.strip()
            if sentence and is_answer_sentence(sentence, rules):
                found.append((-len(set(content_words(sentence))), len(found), sentence))
    return [sentence for _, _, sentence in sorted(found)[:limit]]
