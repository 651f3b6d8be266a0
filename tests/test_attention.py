"""The CPU decoding attention: the same numbers as torch's fused attention, and the same answers."""

from __future__ import annotations

import pytest
import torch

from simrag.attention import NAME, decode_attention
from simrag.config import ModelParams
from simrag.generation import generate, prefill_cache
from simrag.models import load_generator
from simrag.prompting import render


def _reference(query, key, value, mask, scale):
    groups = query.shape[1] // key.shape[1]
    out = torch.nn.functional.scaled_dot_product_attention(
        query, key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1), attn_mask=mask, scale=scale
    )
    return out.transpose(1, 2)


@pytest.mark.parametrize("mask_kind", ["none", "bool", "additive"])
@pytest.mark.parametrize("kv_heads", [1, 3, 9])
def test_decode_attention_matches_sdpa_with_repeated_heads(mask_kind: str, kv_heads: int) -> None:
    torch.manual_seed(0)
    batch, heads, keys, dim = 3, 9, 17, 8
    query = torch.randn(batch, heads, 1, dim)
    key, value = torch.randn(batch, kv_heads, keys, dim), torch.randn(batch, kv_heads, keys, dim)
    keep = torch.ones(batch, 1, 1, keys, dtype=torch.bool)
    keep[0, ..., :5] = False  # left padding of the first row
    mask = {"none": None, "bool": keep, "additive": torch.zeros(keep.shape).masked_fill(~keep, float("-inf"))}
    got = decode_attention(query, key, value, mask[mask_kind], scale=0.3)
    assert got.shape == (batch, 1, heads, dim)
    assert torch.allclose(got, _reference(query, key, value, mask[mask_kind], 0.3), atol=1e-5)


def _prompts(generator) -> list[str]:
    questions = ["What is Docker?", "Explain how continuous integration runs tests on every push.", "Why?"]
    return [render(generator.tokenizer, [{"role": "user", "content": q}]) for q in questions]


def test_generation_on_the_cpu_uses_it_and_answers_as_sdpa(tiny_model_dir) -> None:
    fast = load_generator(tiny_model_dir, params=ModelParams(device="cpu", dtype="fp32"))
    assert fast.model.config._attn_implementation == NAME
    plain = load_generator(tiny_model_dir, params=ModelParams(device="cpu", dtype="fp32"))
    plain.model.set_attn_implementation("sdpa")
    prompts = _prompts(fast)
    for batch_size in (1, 3):  # unmasked and left-padded decoding steps
        ours = generate(fast, prompts, max_new_tokens=16, batch_size=batch_size)
        theirs = generate(plain, prompts, max_new_tokens=16, batch_size=batch_size)
        assert [g.text for g in ours] == [g.text for g in theirs]


def test_row_by_row_prefill_gives_the_batched_cache(tiny_model_dir) -> None:
    generator = load_generator(tiny_model_dir, params=ModelParams(device="cpu", dtype="fp32"))
    encoded = generator.tokenizer(_prompts(generator), return_tensors="pt", padding=True, add_special_tokens=False)
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    assert not mask.all()  # the rows differ in length: some are padded
    with torch.inference_mode():
        positions = (mask[:, :-1].cumsum(-1) - 1).clamp(min=0)  # as generate() numbers left-padded rows
        batched = generator.model(
            input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions, use_cache=True
        ).cache
        rowwise = prefill_cache(generator.model, ids, mask)
        for ours, theirs in zip(rowwise.layers, batched.layers, strict=True):
            real = mask[:, :-1].bool()[:, None, :, None].expand_as(ours.keys)  # padding positions hold anything
            assert torch.allclose(ours.keys[real], theirs.keys[real], atol=1e-5)
            assert torch.allclose(ours.values[real], theirs.values[real], atol=1e-5)


def test_a_static_cache_holds_the_same_prefix_and_room_for_the_answer(tiny_model_dir) -> None:
    generator = load_generator(tiny_model_dir, params=ModelParams(device="cpu", dtype="fp32"))
    encoded = generator.tokenizer(_prompts(generator), return_tensors="pt", padding=True, add_special_tokens=False)
    ids, mask = encoded["input_ids"], encoded["attention_mask"]
    width = ids.shape[1] - 1
    with torch.inference_mode():
        growing = prefill_cache(generator.model, ids, mask)
        static = prefill_cache(generator.model, ids, mask, capacity=width + 16)
    assert int(static.get_seq_length()) == growing.get_seq_length() == width
    for ours, theirs in zip(static.layers, growing.layers, strict=True):
        assert ours.keys.shape[-2] == width + 16
        assert torch.equal(ours.keys[..., :width, :], theirs.keys)
        assert torch.equal(ours.values[..., :width, :], theirs.values)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_generation_with_the_static_cache_answers_as_transformers_own_cache(tiny_model_dir, batch_size: int) -> None:
    generator = load_generator(tiny_model_dir, params=ModelParams(device="cpu", dtype="fp32"))
    tokenizer, model = generator.tokenizer, generator.model
    prompts = _prompts(generator)
    ours = generate(generator, prompts, max_new_tokens=16, batch_size=batch_size)
    theirs = []
    for start in range(0, len(prompts), batch_size):
        encoded = tokenizer(
            prompts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False
        )
        with torch.inference_mode():
            output = model.generate(
                **encoded,
                max_new_tokens=16,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        theirs += tokenizer.batch_decode(output[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
    assert [g.text for g in ours] == [t.strip() for t in theirs]
