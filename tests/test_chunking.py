import itertools

import pytest

from simrag.chunking import LINE, PARAGRAPH, SENTENCE, WORD, Chunker, boundary_qualities


def _paragraphs(n: int) -> str:
    return "\n\n".join(
        f"Paragraph {i} explains topic {i}. It has a second sentence about containers and builds. "
        f"A third sentence mentions caching layer number {i}."
        for i in range(n)
    )


@pytest.mark.parametrize("size,overlap", [(32, 0), (64, 8), (250, 32), (500, 64)])
def test_chunks_respect_the_token_limit(tokenizer, size, overlap):
    chunker = Chunker(tokenizer, size, overlap, min_chunk_tokens=4)
    text = _paragraphs(60)
    chunks = chunker.split(text)
    assert len(chunks) > 1
    for chunk in chunks:
        assert chunk.n_tokens <= size
        assert chunker.count_tokens(chunk.text) == chunk.n_tokens  # exact, not an estimate
    assert [c.position for c in chunks] == list(range(len(chunks)))


def test_chunks_cover_the_text_and_overlap(tokenizer):
    chunker = Chunker(tokenizer, 64, 16)
    text = _paragraphs(20)
    chunks = chunker.split(text)
    for i in range(20):
        assert any(f"Paragraph {i} " in c.text for c in chunks)
    # consecutive chunks share text when overlap is on
    for a, b in itertools.pairwise(chunks):
        assert b.text[:20] in a.text


def test_cuts_fall_on_paragraph_or_sentence_boundaries(tokenizer):
    chunks = Chunker(tokenizer, 64, 0).split(_paragraphs(20))
    for chunk in chunks[:-1]:
        assert chunk.text.rstrip().endswith(".")


def test_a_word_without_spaces_longer_than_a_chunk_is_split(tokenizer):
    chunker = Chunker(tokenizer, 32, 0)
    chunks = chunker.split("-".join(["word"] * 400))  # no whitespace: only in-word cuts exist
    assert len(chunks) > 1
    assert all(c.n_tokens <= 32 for c in chunks)


def test_short_text_gives_no_chunk_and_tails_are_not_slivers(tokenizer):
    chunker = Chunker(tokenizer, 64, 8, min_chunk_tokens=16)
    assert chunker.split("too short") == []
    assert chunker.split("") == []
    for n in range(3, 12):
        chunks = chunker.split(_paragraphs(n))
        assert all(c.n_tokens >= 16 for c in chunks)


def test_boundary_qualities():
    text = "One two. Three\nfour\n\nfive"
    offsets = [(0, 3), (4, 7), (7, 8), (9, 14), (15, 19), (21, 25)]
    q = boundary_qualities(text, offsets)
    assert q[1:] == [WORD, 0, SENTENCE, LINE, PARAGRAPH]


def test_invalid_overlap_is_refused(tokenizer):
    with pytest.raises(ValueError, match="overlap"):
        Chunker(tokenizer, 32, 32)
