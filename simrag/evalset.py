"""Evaluation sets written from the corpus itself, for a domain that has no questions of its own.

A set (`evalsets.<name>` in params.yaml) holds out a share of the corpus's chunks. Which chunks is decided
by a hash of the set's name and each chunk's id, so a chunk never changes sides when documents are added,
and no Stage 2 round ever samples a held-out chunk. The base model writes questions about held-out
chunks with the pipeline's own QA recipe and filters (the `stage2` block, with the set's overrides), and
each kept pair becomes a question of the set: the answer (sentences of the chunk, for the extractive
recipe) is its reference and its evidence, the chunk's document its gold document.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from simrag.errors import DataError


def holdout_point(set_name: str, chunk_id: str) -> float:
    """Where a chunk falls in [0, 1) for one set: the set holds the chunks below its share."""
    digest = hashlib.sha256(f"{set_name}\0{chunk_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def held_out_chunks(chunks: Iterable[dict[str, Any]], set_name: str, share: float) -> list[dict[str, Any]]:
    """The chunks that evaluation set `set_name` holds out."""
    return [c for c in chunks if holdout_point(set_name, str(c["id"])) < share]


def stage2_chunks(chunks: Sequence[dict[str, Any]], shares: dict[str, float]) -> list[dict[str, Any]]:
    """The chunks a Stage 2 round may sample: all but those any evaluation set holds out."""
    return [c for c in chunks if all(holdout_point(name, str(c["id"])) >= s for name, s in shares.items())]


def evalset_records(kept: Iterable[Any], set_name: str) -> list[dict[str, Any]]:
    """Questions of the set, in the evaluation format, from kept QA candidates (`synthetic_qa.Candidate`)."""
    records = []
    for i, candidate in enumerate(kept, start=1):
        records.append(
            {
                "id": f"{set_name}-{i:04d}",
                "question": candidate.question,
                "reference_answer": candidate.answer,
                "evidence": candidate.answer,
                "gold_doc": candidate.chunk["doc"],
                "chunk_id": candidate.chunk["id"],
            }
        )
    if not records:
        raise DataError(
            f"evaluation set {set_name}: no question survived the filters; raise evalsets.{set_name}.share or "
            f"max_chunks, or lower min_context_score for the set"
        )
    return records
