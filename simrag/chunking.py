"""Splitting a document into overlapping chunks measured in the embedder's own tokens.

The document is tokenised once with character offsets. Each chunk ends at the best boundary
in the second half of its window (paragraph > line > sentence > word > inside a word), so
chunks follow the text's structure and never exceed `chunk_tokens`; the next chunk starts at
the best boundary within the last `overlap` tokens, so context carries across the cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# Boundary quality between two tokens, from the text between them.
INSIDE_WORD, WORD, SENTENCE, LINE, PARAGRAPH = 0, 1, 2, 3, 4
_SENTENCE_END = frozenset({".", "!", "?", ":", ";"})


@dataclass(frozen=True)
class Chunk:
    text: str
    n_tokens: int
    position: int  # index of the chunk within its document


def boundary_qualities(text: str, offsets: list[tuple[int, int]]) -> list[int]:
    """quality[i] rates cutting before token i (quality[0] is unused)."""
    qualities = [PARAGRAPH] * len(offsets)
    for i in range(1, len(offsets)):
        prev_start, prev_end = offsets[i - 1]
        gap = text[prev_end : offsets[i][0]]
        if not gap:
            qualities[i] = INSIDE_WORD
        elif "\n" in gap:
            qualities[i] = PARAGRAPH if gap.count("\n") > 1 else LINE
        elif text[prev_start:prev_end] in _SENTENCE_END:
            qualities[i] = SENTENCE
        else:
            qualities[i] = WORD
    return qualities


def _best_cut(qualities: list[int], low: int, high: int, prefer_last: bool) -> int:
    """The cut in [low, high] with the highest quality (the last or first such one)."""
    best, best_quality = (high if prefer_last else low), -1
    positions = range(high, low - 1, -1) if prefer_last else range(low, high + 1)
    for i in positions:
        if qualities[i] > best_quality:
            best, best_quality = i, qualities[i]
            if best_quality == PARAGRAPH:
                break
    return best


class Chunker:
    def __init__(self, tokenizer: Tokenizer, chunk_tokens: int, overlap: int = 0, min_chunk_tokens: int = 1):
        if not 0 <= overlap < chunk_tokens:
            raise ValueError(f"overlap ({overlap}) must be in [0, chunk_tokens={chunk_tokens})")
        self.tokenizer = tokenizer
        self.chunk_tokens = chunk_tokens
        self.overlap = overlap
        self.min_chunk_tokens = max(1, min_chunk_tokens)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).offsets)

    def split(self, text: str) -> list[Chunk]:
        """Chunks of `text`; empty when the text has fewer than `min_chunk_tokens` tokens."""
        offsets = list(self.tokenizer.encode(text, add_special_tokens=False).offsets)
        n = len(offsets)
        if n < self.min_chunk_tokens:
            return []
        qualities = boundary_qualities(text, offsets)
        chunks: list[Chunk] = []
        start = 0
        while True:
            if n - start <= self.chunk_tokens:
                end = n
            else:
                # Leave the tail at least min_chunk_tokens, so no chunk is a sliver.
                high = min(start + self.chunk_tokens, n - self.min_chunk_tokens)
                low = start + max(1, self.chunk_tokens // 2)
                end = _best_cut(qualities, low, high, prefer_last=True) if high >= low else start + self.chunk_tokens
            chunk_text = text[offsets[start][0] : offsets[end - 1][1]]
            chunks.append(Chunk(chunk_text, end - start, len(chunks)))
            if end >= n:
                return chunks
            if self.overlap:
                # Start the next chunk at a clean boundary inside the overlap window.
                next_start = _best_cut(qualities, max(end - self.overlap, start + 1), end - 1, prefer_last=False)
            else:
                next_start = end
            start = next_start
