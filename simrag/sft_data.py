"""Supervised fine-tuning data: conversations as token ids with labels on the assistant's turn only, and
the collator that pads them into batches. Shared by Stage 1 and every Stage 2 round."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simrag.errors import ConfigError
from simrag.instructions import Conversation

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

IGNORE = -100  # label of a position that is not learned


def encode(conversation: Conversation, tokenizer: Any, max_len: int) -> tuple[dict[str, list[int]] | None, str]:
    """Token ids of the conversation through the chat template, labels on the assistant turn only.

    Returns (example, status): status "ok", "truncated" (cut to max_len, some answer left) or
    "too_long" (nothing of the answer fits: example is None).
    """
    messages = conversation.messages()
    prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt):
        raise ConfigError(
            "the model's chat template does not render a conversation as its prompt followed by the answer; "
            "simrag cannot tell which tokens are the assistant's"
        )
    encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])
    boundary = len(prompt)
    offsets = encoded["offset_mapping"]
    labels = [token if start >= boundary else IGNORE for token, (start, _) in zip(ids, offsets, strict=True)]
    status = "ok"
    if len(ids) > max_len:
        ids, labels, status = ids[:max_len], labels[:max_len], "truncated"
    if all(label == IGNORE for label in labels):
        return None, "too_long"
    return {"input_ids": ids, "labels": labels}, status


def encode_all(
    conversations: list[Conversation], tokenizer: Any, max_len: int
) -> tuple[list[dict[str, list[int]]], Counter]:
    examples: list[dict[str, list[int]]] = []
    counts: Counter = Counter()
    for conversation in conversations:
        example, status = encode(conversation, tokenizer, max_len)
        counts[status] += 1
        if example is not None:
            examples.append(example)
    if counts["truncated"] or counts["too_long"]:
        log.warning(
            "max_len %d: %d examples truncated, %d dropped (no answer token fits)",
            max_len,
            counts["truncated"],
            counts["too_long"],
        )
    return examples, counts


@dataclass
class PadCollator:
    """Right-pads a batch; padded positions are masked out of attention and loss."""

    pad_id: int

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            n = len(row["input_ids"])
            ids[i, :n] = torch.tensor(row["input_ids"])
            labels[i, :n] = torch.tensor(row["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def token_micro_batches(batch: dict[str, torch.Tensor], max_tokens: int) -> list[dict[str, torch.Tensor]]:
    """One update's right-padded batch as micro-batches of whole rows, longest first, each within
    `max_tokens` padded tokens (its rows x its longest row; a row longer than that goes alone) and cut to
    its longest row. Short sequences share a step and long ones are split: the same rows in fewer steps
    where most are short, never a larger step than `max_tokens`."""
    import torch

    lengths = batch["attention_mask"].sum(dim=1).tolist()
    order = torch.argsort(torch.tensor(lengths), descending=True, stable=True).tolist()
    groups: list[list[int]] = []
    for row in order:
        if groups and (len(groups[-1]) + 1) * lengths[groups[-1][0]] <= max_tokens:
            groups[-1].append(row)
        else:
            groups.append([row])
    parts = []
    for group in groups:
        rows, width = torch.tensor(group), lengths[group[0]]
        parts.append({key: value[rows, :width] for key, value in batch.items()})
    return parts
