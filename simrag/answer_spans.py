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
# A sentence that leans on what comes before or after it ("This is ...", "the following ...") answers
# nothing on its own.
_LEANS_ON_CONTEXT = re.compile(
    r"^(?:it|this|these|that|those|they|such|here|there|then|also|however|otherwise|instead|see)\b|"
    r"\b(?:the following|as follows|below|above|previous(?:ly)?|preceding|this example|the example)\b",
    re.IGNORECASE,
)
# Named things a question can carry to the retriever: code, options, CamelCase and Capitalised names.
_NAMED = re.compile(r"`[^`]+`|--?[a-z][\w-]+|\b[A-Z][a-z]+[A-Z]\w*|\b[a-z]+_[a-z_]+\b|(?<=\s)[A-Z][a-zA-Z]{2,}")
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
    if _NAVIGATION.search(sentence) or _LEANS_ON_CONTEXT.search(sentence):
        return False
    letters = sum(ch.isalpha() or ch.isspace() for ch in sentence)
    if letters / len(sentence) < rules.min_letter_share:
        return False
    return len(set(content_words(sentence))) >= rules.min_content_words


def informativeness(sentence: str) -> int:
    """Distinct content words, and twice the named things (code, options, names): what a question about
    the sentence can carry to the retriever, so that it finds the sentence's chunk again."""
    return len(set(content_words(sentence))) + 2 * len(set(_NAMED.findall(sentence)))


def answer_spans(text: str, limit: int, rules: SpanRules | None = None) -> list[str]:
    """Up to `limit` answer sentences of the chunk `text`, the most informative first (earlier first among
    equals). A sentence cut by the chunk's border, or leaning on its neighbours, is left out."""
    rules = rules or SpanRules()
    found: list[tuple[int, int, str]] = []
    for block in prose_blocks(text):
        for sentence in _SENTENCE_END.split(block):
            sentence = sentence.strip()
            if sentence and is_answer_sentence(sentence, rules):
                found.append((-informativeness(sentence), len(found), sentence))
    return [sentence for _, _, sentence in sorted(found)[:limit]]
