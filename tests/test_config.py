import ast
import re
from pathlib import Path

import pytest
import yaml

from simrag.config import Params, load_params, parse_params
from simrag.errors import ConfigError
from tests.conftest import ROOT

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
# Modules that cannot change a stage's outputs: they parse params, name errors, log and write files atomically.
NEUTRAL_MODULES = {"simrag/__init__.py", "simrag/config.py", "simrag/errors.py", "simrag/stage.py", "simrag/jsonio.py"}


def test_shipped_params_are_valid():
    params = load_params(ROOT / "params.yaml")
    assert params.retrieval.top_k == 5 and params.retrieval.threshold == 0.7  # the paper's retrieval


# Mappings of names the user chooses (rounds, models, sets): params.yaml holds the pipeline's, the code
# a minimal valid one; every other key has one default, the same in both places.
NAMED = {"rounds", "evalsets", "evaluate.models", "evaluate.sets", "evaluate.pooled"}


def test_defaults_match_params_yaml():
    """params.yaml spells out every knob, so `dvc params diff` shows every change, with the value the code
    takes when the key is left out: one default, not two that drift."""
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    defaults = Params().model_dump()
    for block, model in Params.model_fields.items():
        if block in NAMED:
            assert block in raw
            continue
        assert set(raw[block]) == set(model.annotation.model_fields), block
        for key, value in raw[block].items():
            code = defaults[block][key]
            if f"{block}.{key}" not in NAMED:
                assert code == value, f"{block}.{key}: params.yaml {value!r}, code {code!r}"


@pytest.mark.parametrize(
    "raw,expected",
    [
        ({"index": {"dtype": "int4"}}, "index.dtype: must be one of 'auto', 'bf16', 'fp16' or 'fp32' (got 'int4')"),
        ({"retrieval": {"top_k": 0}}, "retrieval.top_k: Input should be greater than or equal to 1 (got 0)"),
        (
            {"prepare": {"chunk_tokens": 64, "chunk_overlap": 64}},
            "chunk_overlap (64) must be smaller than chunk_tokens (64)",
        ),
        ({"retrieval": {"treshold": 0.5}}, "retrieval.treshold: unknown key"),
        ({"trian": {}}, "trian: unknown key"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_bad_params_name_the_key(raw, expected):
    with pytest.raises(ConfigError) as excinfo:
        parse_params(raw)
    assert expected in str(excinfo.value)


def test_missing_params_file(tmp_path):
    with pytest.raises(ConfigError, match="parameter file not found"):
        load_params(tmp_path / "params.yaml")


def _stage_script(stage: dict) -> Path:
    match = re.search(r"(?:python|\$\{launch\.train\}) (stages/\w+\.py)", stage["cmd"])
    assert match, stage["cmd"]
    return ROOT / match.group(1)


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under `if TYPE_CHECKING:` (imports for the type checker never run)."""
    skipped = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
        for child in node.body
        for inner in ast.walk(child)
    }
    return [node for node in ast.walk(tree) if id(node) not in skipped]


def _simrag_imports(path: Path, seen: set[str]) -> set[str]:
    for node in _runtime_nodes(ast.parse(path.read_text())):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        if isinstance(node, ast.ImportFrom) and node.module == "simrag":  # from simrag import attention
            names = [f"simrag.{alias.name}" for alias in node.names]
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            if name.startswith("simrag."):
                module = name.replace(".", "/") + ".py"
                if module not in seen:
                    seen.add(module)
                    _simrag_imports(ROOT / module, seen)
    return seen


@pytest.mark.parametrize("name", sorted(DVC["stages"]))
def test_dvc_stage_declares_the_params_and_code_it_uses(name):
    stage = DVC["stages"][name]
    stage = stage.get("do", stage)  # a foreach stage keeps its definition under `do`
    script = _stage_script(stage)
    declared = set(stage.get("params", []))
    for block, field in set(re.findall(r"\bparams\.(?!yaml)(\w+)(?:\.(\w+))?", script.read_text())):
        if block == "round_settings":  # a round's stage2 settings: the stage2 block and the round's entry
            assert "stage2" in declared and "rounds.${key}" in declared, f"{name}: params stage2, rounds.<round>"
        elif block == "evalset_settings":  # a set's share and stage2 settings: the stage2 block and its entry
            assert "stage2" in declared and "evalsets.${key}" in declared, f"{name}: params stage2, evalsets.<set>"
        elif block == "evalset_shares":  # every set's share: what the rounds may not sample
            assert "evalsets" in declared, f"{name}: params evalsets"
        elif field:  # params.block.field: that key, or its whole block
            assert block in declared or f"{block}.{field}" in declared, f"{name}: param {block}.{field}"
        else:  # the whole block is handed on: every key of it
            fields = Params.model_fields[block].annotation.model_fields
            each = all(f"{block}.{f}" in declared or f"{block}.{f}.${{key}}" in declared for f in fields)
            assert block in declared or each, f"{name}: params block {block}"
    deps = {dep for dep in stage["deps"] if "${" not in dep}
    assert script.relative_to(ROOT).as_posix() in deps
    closure = _simrag_imports(script, set()) - NEUTRAL_MODULES
    missing, extra = closure - deps, {d for d in deps if d.startswith("simrag/")} - closure
    assert not missing, f"{name}: dvc.yaml deps lack {sorted(missing)}"
    assert not extra, f"{name}: dvc.yaml deps list {sorted(extra)}, which the stage does not import"


def test_dvc_lock_records_only_stages_of_the_pipeline():
    """A stage dropped from the pipeline (a round or a retriever adaptation turned off) leaves its entry in
    dvc.lock, where `dvc metrics diff` and `simrag verify` would still read it: the committed lock holds
    the pipeline's stages and nothing else."""
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        stages = {stage.addressing for stage in repo.index.stages if stage.cmd}
    locked = set(yaml.safe_load((ROOT / "dvc.lock").read_text())["stages"])
    assert not locked - stages, f"dvc.lock holds stages that dvc.yaml no longer defines: {sorted(locked - stages)}"
