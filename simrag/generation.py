"""Batched greedy generation, and scoring fixed answers (labels) by their likelihood."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from simrag.models import Generator


@dataclass(frozen=True)
class Generation:
    text: str
    n_tokens: int  # new tokens the model produced, its end-of-turn token included
    seconds: float  # this prompt's share of its batch's wall time


def _stop_ids(generator: Generator) -> list[int]:
    tokenizer = generator.tokenizer
    ids = {tokenizer.eos_token_id}
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(end_of_turn, int) and end_of_turn != tokenizer.unk_token_id:
        ids.add(end_of_turn)
    return sorted(i for i in ids if i is not None)


def prefill_cache(model: Any, input_ids: Any, attention_mask: Any, capacity: int | None = None) -> Any:
    """The key/value cache of a left-padded batch for all but each row's last token, computed one row
    at a time: a row alone needs no padding mask, so attention takes the causal flash kernel instead
    of a masked full product (~10% less prefill time for 1,000-token RAG prompts on a CPU; the
    matrix products are as large either way). Padding positions get zero keys and values, which the
    attention mask hides from every later step.

    With `capacity` (the prompt's width plus the tokens to generate), the cache is a static one of
    that many positions: each decoding step writes its keys and values in place, where a growing
    cache copies all of them at every step (for 16 RAG prompts on a 2-core CPU, decoding took 18%
    less time; benchmarks/bench_generation.py). Attention then spans the unfilled positions too,
    masked."""
    import torch
    from transformers import DynamicCache, StaticCache

    width = input_ids.shape[1] - 1
    rows = []
    for ids, mask in zip(input_ids, attention_mask, strict=True):
        real = ids[mask.bool()][:-1].unsqueeze(0)
        rows.append(model(input_ids=real, use_cache=True, logits_to_keep=1).cache)
    cache: DynamicCache | StaticCache
    if capacity is None:
        cache = DynamicCache(config=model.config)
    else:
        cache = StaticCache(config=model.config, max_cache_len=max(capacity, width + 1))
    for layer in range(len(rows[0].layers)):
        keys, values = (
            torch.cat(
                [
                    torch.nn.functional.pad(getattr(r.layers[layer], part), (0, 0, width - r.get_seq_length(), 0))
                    for r in rows
                ]
            )
            for part in ("keys", "values")
        )
        cache.update(keys, values, layer)
    return cache


def generate(
    generator: Generator,
    prompts: list[str],
    max_new_tokens: int = 128,
    repetition_penalty: float = 1.0,
    batch_size: int = 8,
    progress: bool = False,
) -> list[Generation]:
    """Greedy answers to rendered prompts, batched by length so that little padding is computed."""
    import torch

    tokenizer, model = generator.tokenizer, generator.model
    stop = _stop_ids(generator)
    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    results: dict[int, Generation] = {}
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc="generate", unit="batch", disable=not progress):
        encoded = tokenizer(
            [prompts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False
        ).to(model.device)
        started = time.perf_counter()
        with torch.inference_mode():
            # On a CPU the cache is filled row by row, into a static cache (see prefill_cache)
            own_cache = model.device.type == "cpu" and min(lengths[i] for i in batch) > 1
            cache = None
            if own_cache:
                capacity = encoded["input_ids"].shape[1] + max_new_tokens
                cache = prefill_cache(model, encoded["input_ids"], encoded["attention_mask"], capacity)
            output = model.generate(
                **encoded,
                cache=cache,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                repetition_penalty=repetition_penalty,
                eos_token_id=stop,
                pad_token_id=tokenizer.pad_token_id,
            )
        seconds = (time.perf_counter() - started) / len(batch)
        new_tokens = output[:, encoded["input_ids"].shape[1] :].tolist()
        for i, tokens in zip(batch, new_tokens, strict=True):
            n = next((j + 1 for j, t in enumerate(tokens) if t in stop), len(tokens))
            text = tokenizer.decode(tokens[:n], skip_special_tokens=True).strip()
            results[i] = Generation(text, n, seconds)
    return [results[i] for i in range(len(prompts))]


def label_logprobs(generator: Generator, prompts: list[str], labels: list[str], batch_size: int = 8) -> np.ndarray:
    """log P(label | prompt) for every prompt and label: shape (len(prompts), len(labels)).

    When every label is one token, one forward pass per prompt suffices (the next-token
    distribution); otherwise each prompt + label sequence is scored in full.
    """
    import torch

    tokenizer, model = generator.tokenizer, generator.model
    label_ids = [tokenizer(label, add_special_tokens=False)["input_ids"] for label in labels]
    scores = np.zeros((len(prompts), len(labels)), dtype=np.float64)
    single = all(len(ids) == 1 for ids in label_ids)
    # Longest first, so that each batch pads little; scores go back to the prompts' own order.
    order = sorted(
        range(len(prompts)), key=lambda i: -len(tokenizer(prompts[i], add_special_tokens=False)["input_ids"])
    )
    ordered = [prompts[i] for i in order]
    # On a CPU one prompt at a time: unpadded, attention takes the causal flash kernel (~10% faster
    # for 1,000-token prompts; the matrix products are as large either way).
    batch_size = 1 if model.device.type == "cpu" else batch_size
    with torch.inference_mode():
        for start in range(0, len(prompts), batch_size):
            batch = ordered[start : start + batch_size]
            if single:
                encoded = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
                # logits_to_keep=1: the vocabulary projection for the last position only, not all of them
                logits = model(**encoded, logits_to_keep=1).logits[:, -1, :].float()
                logp = torch.log_softmax(logits, dim=-1)
                scores[order[start : start + len(batch)]] = logp[:, [ids[0] for ids in label_ids]].cpu().numpy()
                continue
            for j, ids in enumerate(label_ids):
                texts = [p + tokenizer.decode(ids) for p in batch]
                encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
                n = len(ids)
                # left padding: the label is the last n tokens of every row, predicted by the n positions before
                logits = model(**encoded, logits_to_keep=n + 1).logits[:, :-1, :].float()
                targets = encoded["input_ids"][:, -n:]
                picked = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
                scores[order[start : start + len(batch)], j] = picked.sum(-1).cpu().numpy()
    return scores
