"""Profiles: every shipped one is valid, and the `dvc exp run -S` overrides make exactly its change."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from simrag.cli import main
from simrag.errors import ConfigError
from simrag.profiles import apply_profile, dvc_overrides, load_profile, merge
from tests.conftest import ROOT

PROFILES = sorted((ROOT / "profiles").glob("*.yaml"))


def test_the_documented_profiles_ship() -> None:
    assert {p.stem for p in PROFILES} >= {"paper", "smoke", "pubmedqa"}


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_every_profile_passes_the_params_validation(profile: Path) -> None:
    params = apply_profile(ROOT / "params.yaml", profile)
    assert load_profile(profile), "a profile changes something"
    if profile.stem == "paper":  # the reproduction paper's setting
        assert params.model.base == "Qwen/Qwen2.5-1.5B-Instruct" and params.model.load_in_4bit == "true"
        assert params.stage1.epochs == 3 and params.stage1.max_examples == 0
        assert params.stage2.min_context_score == 0.7 and 200 <= params.prepare.chunk_tokens <= 500
        assert params.prepare.chunk_tokens <= params.embedder.max_seq_length - 2
    if profile.stem == "pubmedqa":
        assert list(params.evaluate.sets) == ["pubmedqa_dev"]  # replaced, not merged into the DevOps sets
    if profile.stem == "own-corpus":  # README "Your own corpus": questions made from the user's documents
        assert params.evaluate.sets == {"mydocs": "data/evalsets/mydocs.jsonl"} and not params.evaluate.pooled
        assert params.evalset_shares() == {"mydocs": 0.05}


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_dvc_overrides_make_the_profile_s_change(profile: Path, tmp_path: Path) -> None:
    from dvc.utils.hydra import apply_overrides  # what `dvc exp run -S` does to params.yaml

    base = yaml.safe_load((ROOT / "params.yaml").read_text())
    target = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", target)
    apply_overrides(str(target), dvc_overrides(base, load_profile(profile)))
    assert yaml.safe_load(target.read_text()) == merge(base, load_profile(profile))


def test_blocks_merge_and_name_mappings_are_replaced() -> None:
    base = {"train": {"lr": 1, "steps": 2}, "evaluate": {"sets": {"a": "x", "b": "y"}, "seed": 0}}
    profile = {"train": {"lr": 3}, "evaluate": {"sets": {"c": "z"}}, "new": {"k": 1}}
    assert merge(base, profile) == {
        "train": {"lr": 3, "steps": 2},
        "evaluate": {"sets": {"c": "z"}, "seed": 0},
        "new": {"k": 1},
    }
    assert dvc_overrides(base, profile) == ["train.lr=3", "~evaluate.sets", "+evaluate.sets={c: z}", "+new={k: 1}"]
    assert dvc_overrides({"m": {"b": "x"}}, {"m": {"b": "true"}}) == ["m.b='true'"]  # a string, not a bool


def test_a_bad_profile_names_the_profile_and_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  learning_rat: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml has invalid values:\n  train.learning_rat: unknown key"):
        apply_profile(ROOT / "params.yaml", bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="a profile is a mapping"):
        load_profile(bad)


def test_simrag_exp_prints_the_dvc_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(main, ["exp", "smoke", "--print", "--queue"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("dvc exp run -S prepare.corpus_dir=data/raw/corpus/devops-small -S ")
    assert result.output.rstrip().endswith("--queue")
    missing = CliRunner().invoke(main, ["exp", "nosuch", "--print"])
    assert missing.exit_code == 1 and "profile not found: profiles/nosuch.yaml (profiles: " in missing.output


def test_simrag_exp_runs_this_environment_s_dvc(monkeypatch: pytest.MonkeyPatch) -> None:
    """`.venv/bin/simrag exp ...` works without an activated environment: dvc and the stages' `python`
    are looked up in simrag's own environment first."""
    import subprocess
    import sys

    calls: list[tuple[list[str], dict[str, str]]] = []

    def fake_run(command: list[str], check: bool, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        calls.append((command, env))
        return subprocess.CompletedProcess(command, 3)

    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("PATH", "/usr/bin")
    monkeypatch.setattr(subprocess, "run", fake_run)
    result = CliRunner().invoke(main, ["exp", "smoke"])
    assert result.exit_code == 3  # dvc's exit status is passed on
    ((command, env),) = calls
    assert command[:3] == ["dvc", "exp", "run"]
    assert env["PATH"].split(":") == [str(Path(sys.executable).parent), "/usr/bin"]
