"""Instruction data for Stage 1: Alpaca-format records as chat conversations.

A source is a local JSON file (a list of `{instruction, input, output}` records, Alpaca's format), a
JSON-lines file of the same records, or, for a user with network access, a hub dataset id such as
`tatsu-lab/alpaca` (set HF_HUB_OFFLINE=0). Records without an instruction or an output are skipped and
counted, never silently used.
"""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simrag.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Conversation:
    """One training example: a user turn (after an optional system prompt) and the assistant turn the
    model learns to write."""

    user: str
    assistant: str
    source: str = ""
    system: str = ""

    def messages(self) -> list[dict[str, str]]:
        turns = [{"role": "user", "content": self.user}, {"role": "assistant", "content": self.assistant}]
        return ([{"role": "system", "content": self.system}] if self.system else []) + turns


def _is_local(source: str) -> bool:
    return source.endswith((".json", ".jsonl")) or source.startswith((".", "/", "~")) or Path(source).exists()


def _read_local(path: Path) -> list[Any]:
    if not path.is_file():
        raise DataError(f"instruction file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise DataError(f"instruction file {path} is empty")
    if path.suffix == ".jsonl":
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}, line {number}: not valid JSON ({exc.msg})") from None
        return records
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of {{instruction, input, output}} records")
    return data


def _read_hub(name: str) -> list[Any]:
    try:
        from datasets import load_dataset

        return list(load_dataset(name, split="train"))
    except Exception as exc:  # the datasets library raises many kinds; all mean "cannot get it"
        raise DataError(
            f"cannot load instruction dataset '{name}': {exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}. "
            "Name a local .json/.jsonl file, or a hub dataset id with HF_HUB_OFFLINE=0 and network access."
        ) from None


def to_conversation(record: Any, source: str) -> Conversation | None:
    """An Alpaca record as a conversation; None when it lacks an instruction or an output."""
    if not isinstance(record, dict):
        return None
    instruction, extra, output = record.get("instruction"), record.get("input") or "", record.get("output")
    if not isinstance(instruction, str) or not isinstance(output, str) or not isinstance(extra, str):
        return None
    instruction, extra, output = instruction.strip(), extra.strip(), output.strip()
    if not instruction or not output:
        return None
    user = f"{instruction}\n\n{extra}" if extra else instruction
    return Conversation(user=user, assistant=output, source=source)


def load_instructions(sources: list[str], max_examples: int = 0, seed: int = 0) -> tuple[list[Conversation], Counter]:
    """Every usable record of `sources`, shuffled with `seed`, the first `max_examples` kept (0: all).

    Returns the conversations and counts of what was read and skipped.
    """
    if not sources:
        raise DataError("no instruction data named: give at least one file or dataset id")
    counts: Counter = Counter()
    conversations: list[Conversation] = []
    for source in sources:
        records = _read_local(Path(source).expanduser()) if _is_local(source) else _read_hub(source)
        usable = [c for c in (to_conversation(r, source) for r in records) if c is not None]
        skipped = len(records) - len(usable)
        if skipped:
            log.warning("%s: skipped %d of %d records without an instruction or output", source, skipped, len(records))
        counts["records"] += len(records)
        counts["skipped_incomplete"] += skipped
        conversations.extend(usable)
    if not conversations:
        raise DataError(f"no usable instruction records in {', '.join(sources)}")
    random.Random(seed).shuffle(conversations)
    if max_examples:
        conversations = conversations[:max_examples]
    counts["used"] = len(conversations)
    return conversations, counts


def split_validation(items: list[Any], val_size: int) -> tuple[list[Any], list[Any]]:
    """(train, validation): the first `val_size` items held out, at most a fifth of them."""
    held_out = min(val_size, len(items) // 5)
    if held_out < val_size:
        log.warning("validation slice cut from %d to %d examples: only %d in all", val_size, held_out, len(items))
    return items[held_out:], items[:held_out]


def stage1_replay(
    sources: list[str], max_examples: int, val_size: int, split_seed: int, n: int, seed: int
) -> list[Conversation]:
    """`n` conversations drawn with `seed` from Stage 1's training split: the same records, shuffle
    (`split_seed`, Stage 1's train.seed) and validation cut as Stage 1, so that none of its held-out
    validation examples is ever trained on."""
    if n <= 0:
        return []
    conversations, _ = load_instructions(sources, max_examples, split_seed)
    train, _ = split_validation(conversations, val_size)
    return random.Random(seed).sample(train, min(n, len(train)))
