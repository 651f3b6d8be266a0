"""A merged model as one GGUF file, for llama.cpp and Ollama.

Written with `gguf`, llama.cpp's own reader and writer as published on PyPI (llama.cpp's converter script
itself is not packaged). Llama-architecture models only (SmolLM2, Llama, and their fine-tunes): their
tensors are renamed with gguf's name map for the architecture, the query and key projections permuted
into llama.cpp's rotary layout (as its converter does), 1-D tensors kept in float32 and the matrices in
float16 or float32. The tokenizer (byte-level BPE: tokens, types, merges, special tokens, chat template)
is read from the model folder. llama.cpp names its pre-tokenizer by model family; where the vocabulary is
the packaged SmolLM2 one, that GGUF's name is kept, otherwise "default" (llama.cpp warns and may split
some text differently from the original tokenizer).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from simrag.errors import DataError

log = logging.getLogger(__name__)

TENSOR_TYPES = ("f16", "f32")


def _permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """Query/key rows from the Hugging Face rotary layout (halves) to llama.cpp's (interleaved pairs)."""
    rows = weights.shape[0]
    return weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def _config(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "config.json"
    if not path.is_file():
        raise DataError(f"no config.json in {model_dir}: not a transformers model folder")
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("model_type") != "llama":
        raise DataError(
            f"GGUF export supports Llama-architecture models (SmolLM2, Llama); {model_dir} is "
            f"{config.get('model_type')!r}: convert the exported folder with llama.cpp's convert_hf_to_gguf.py"
        )
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if rope.get("rope_type", "default") != "default":
        raise DataError(f"GGUF export: rope scaling {rope.get('rope_type')!r} is not supported")
    return config


def _packaged_pre_tokenizer(tokens: list[str]) -> str:
    """llama.cpp's pre-tokenizer name for this vocabulary: the packaged SmolLM2 GGUF's where it is the same."""
    import gguf

    from simrag.errors import ModelNotFoundError
    from simrag.models import packaged_gguf

    try:
        reader = gguf.GGUFReader(str(packaged_gguf()))
    except (ModelNotFoundError, OSError):
        return "default"
    field = reader.fields.get("tokenizer.ggml.tokens")
    if field is not None and field.contents() == tokens:
        return str(reader.fields["tokenizer.ggml.pre"].contents())
    log.warning("GGUF export: llama.cpp has no pre-tokenizer name for this vocabulary here; writing 'default'")
    return "default"


def _add_tokenizer(writer: Any, model_dir: Path, vocab_size: int) -> None:
    import gguf
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    by_id = {i: token for token, i in tokenizer.get_vocab().items()}
    added = tokenizer.get_added_vocab()
    special = set(tokenizer.all_special_tokens)
    tokens, types = [], []
    for i in range(vocab_size):
        token = by_id.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(token)
            if token in added:
                types.append(gguf.TokenType.CONTROL if token in special else gguf.TokenType.USER_DEFINED)
            else:
                types.append(gguf.TokenType.NORMAL)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_packaged_pre_tokenizer(tokens))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=vocab_size).add_to_gguf(writer)
    if tokenizer.chat_template and "tokenizer.chat_template" not in writer.kv_data[0]:
        writer.add_chat_template(tokenizer.chat_template)


def write_gguf(model_dir: Path, out_file: Path, tensor_type: str = "f16", name: str = "") -> Path:
    """Write the transformers model in `model_dir` (merged, e.g. by `simrag export`) to `out_file`."""
    import gguf
    import torch
    from safetensors.torch import load_file

    if tensor_type not in TENSOR_TYPES:
        raise DataError(f"GGUF tensor type must be one of {', '.join(TENSOR_TYPES)} (got {tensor_type!r})")
    model_dir = Path(model_dir)
    config = _config(model_dir)
    n_head, n_kv = config["num_attention_heads"], config.get("num_key_value_heads", config["num_attention_heads"])
    head_dim = config.get("head_dim") or config["hidden_size"] // n_head
    rope = config.get("rope_parameters") or {}
    writer = gguf.GGUFWriter(str(out_file), "llama")
    writer.add_name(name or model_dir.name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(rope.get("rope_theta", config.get("rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if tensor_type == "f16" else gguf.LlamaFileType.ALL_F32)
    _add_tokenizer(writer, model_dir, config["vocab_size"])

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config["num_hidden_layers"])
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(model_dir.glob("*.safetensors")):
        state.update(load_file(shard))
    for hf_name, tensor in state.items():
        if hf_name == "lm_head.weight" and config.get("tie_word_embeddings"):
            continue  # llama.cpp reuses token_embd for a tied output head
        data = tensor.to(torch.float32).numpy()
        if hf_name.endswith("self_attn.q_proj.weight"):
            data = _permute(data, n_head)
        elif hf_name.endswith("self_attn.k_proj.weight"):
            data = _permute(data, n_kv)
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise DataError(f"GGUF export: no llama.cpp name for tensor {hf_name}")
        data = data.astype(np.float16 if tensor_type == "f16" and data.ndim > 1 else np.float32)
        writer.add_tensor(gguf_name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_file
