"""Candidate answers taken from a chunk's own text, for the `extractive` Stage 2 recipe.

SimRAG extracts answers first and then asks a question for each. A 135M model extracts poorly (most of
its "answers" are not in the chunk, or are headings), so this recipe picks them by rule: whole sentences
of the chunk's prose that say something. Left out are headings, navigation, table rows, code, and
sentences cut off by the chunk's borders. The answer is grounded by construction; the model only writes
the question.

An answer may run on into the sentences that follow its lead sentence in the same paragraph (`sentences`):
documentation says a thing, then why or how, and an answer of two sentences reads like the answers people
write (the DevOps references run ~30-40 words; one picked sentence, ~17).
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
# A sentence pointing on to what follows it (a list, an example, another page) ends an answer.
_POINTS_ONWARD = re.compile(r"^see\b|\b(?:the following|as follows|below|for example:|e\.g\.:)", re.IGNORECASE)
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


def continues_answer(sentence: str, rules: SpanRules) -> bool:
    """A sentence that may follow an answer's lead sentence: whole prose, not code, a table or navigation
    (it may lean back on the lead, "This ...", "It ...", but not point on: "See below.")."""
    if not sentence or len(sentence.split()) > rules.max_words or not sentence.endswith((".", "!")):
        return False
    if not (sentence[0].isupper() or sentence[0] in "`\"'(") or _NAVIGATION.search(sentence):
        return False
    if _POINTS_ONWARD.search(sentence) or len(re.sub(r"`[^`]*`", " ", sentence).split()) < 4:  # bare code
        return False
    letters = sum(ch.isalpha() or ch.isspace() for ch in sentence)
    return letters / len(sentence) >= rules.min_letter_share


def informativeness(sentence: str) -> int:
    """Distinct content words, and twice the named things (code, options, names): what a question about
    the sentence can carry to the retriever, so that it finds the sentence's chunk again."""
    return len(set(content_words(sentence))) + 2 * len(set(_NAMED.findall(sentence)))


def answer_spans(text: str, limit: int, rules: SpanRules | None = None, sentences: int = 1) -> list[str]:
    """Up to `limit` answers from the chunk `text`: each a lead sentence, the most informative first
    (earlier first among equals), followed by up to `sentences - 1` sentences of its paragraph while they
    continue it. A lead cut by the chunk's border, or leaning on its neighbours, is left out; so is a
    follower cut by the border (the chunk's last sentence without its end)."""
    rules = rules or SpanRules()
    found: list[tuple[int, int, str]] = []
    for block in prose_blocks(text):
        parts = [part.strip() for part in _SENTENCE_END.split(block)]
        for i, sentence in enumerate(parts):
            if sentence and is_answer_sentence(sentence, rules):
                span = [sentence]
                for follower in parts[i + 1 : i + sentences]:
                    if not continues_answer(follower, rules):
                        break
                    span.append(follower)
                found.append((-informativeness(sentence), len(found), " ".join(span)))
    return [span for _, _, span in sorted(found)[:limit]]
