"""Attention for decoding on a CPU: one new token against the key/value cache, done plainly.

Generating a token attends from one query position to the whole cache. transformers' `sdpa` hands
that step to torch's fused kernel, which on a CPU is built for long queries: with no mask (a batch
of one, rows of equal length) it asks for `enable_gqa` and runs ~7x slower than needed, and with a
padding mask it is still ~2x slower than two matrix products and a softmax. `simrag_sdpa` is
transformers' `sdpa` except for those single-token steps, which fold the query heads that share a
key/value head into one (groups x keys) product per key/value head, the same arithmetic without
repeating keys and values, and take the softmax in float32.
"""

from __future__ import annotations

import math
from typing import Any

NAME = "simrag_sdpa"


def decode_attention(query: Any, key: Any, value: Any, mask: Any, scale: float) -> Any:
    """query (batch, heads, 1, dim); key, value (batch, kv_heads, keys, dim); mask None, boolean
    (True: attend) or additive, broadcastable to (batch, 1, 1, keys). Returns (batch, 1, heads, dim)."""
    import torch

    batch, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    packed = query.reshape(batch, kv_heads, heads // kv_heads, dim)
    scores = torch.matmul(packed, key.transpose(-1, -2)).float().mul_(scale)
    if mask is not None and mask.dtype == torch.bool:
        scores.masked_fill_(~mask, float("-inf"))
    elif mask is not None:
        scores.add_(mask.float())
    out = torch.matmul(scores.softmax(-1).to(value.dtype), value)
    return out.reshape(batch, heads, 1, dim).transpose(1, 2).contiguous()


def sdpa_decode_plain(
    module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any
) -> tuple[Any, None]:
    """transformers' attention-function interface: query (batch, heads, q, dim); key and value
    (batch, kv_heads, k, dim); returns (batch, q, heads, dim)."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    plain_decode = (
        query.shape[2] == 1
        and query.shape[1] % key.shape[1] == 0
        and kwargs.get("position_bias") is None
        and kwargs.get("softcap") is None
        and not kwargs.get("output_attentions", False)
        and not torch.is_grad_enabled()
        and query.device.type == "cpu"
    )
    if not plain_decode:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    scale = kwargs.get("scaling") or 1 / math.sqrt(query.shape[-1])
    return decode_attention(query, key, value, attention_mask, scale), None


def register() -> str:
    """Make `simrag_sdpa` known to transformers (idempotent); returns its name for `attn_implementation`."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, sdpa_decode_plain)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return NAME
