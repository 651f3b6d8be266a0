"""Profiles: named sets of parameter overrides (profiles/*.yaml) on top of params.yaml.

A profile holds only what it changes, in the layout of params.yaml. Blocks merge key by key, except
the mappings a user fills with names (evaluate.sets, evaluate.models, evaluate.pooled, rounds, retriever.rounds,
evalsets, stage2.source_weights): a profile that names one replaces it whole. `dvc_overrides` turns a profile
into the `-S` arguments of `dvc exp run` that make the same change, so an experiment records it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from simrag.config import Params, parse_params
from simrag.errors import ConfigError

# Mappings whose keys are names the user chooses: a profile replaces them instead of merging into them.
REPLACED = {
    "evaluate.sets",
    "evaluate.models",
    "evaluate.pooled",
    "rounds",
    "retriever.rounds",
    "evalsets",
    "stage2.source_weights",
}


def load_profile(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in path.parent.glob("*.yaml"))) if path.parent.is_dir() else ""
        raise ConfigError(f"profile not found: {path}" + (f" (profiles: {known})" if known else ""))
    try:
        profile = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(profile, dict) or not profile:
        raise ConfigError(f"{path}: a profile is a mapping of params.yaml blocks to the values it changes")
    return profile


def merge(base: dict[str, Any], profile: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`base` with `profile` applied: nested blocks merge, the name mappings in REPLACED are replaced."""
    merged = dict(base)
    for key, value in profile.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and path not in REPLACED:
            merged[key] = merge(merged[key], value, f"{path}.")
        else:
            merged[key] = value
    return merged


def apply_profile(params_path: str | Path, profile_path: str | Path) -> Params:
    """The validated params of `params_path` with the profile applied (a bad key names the profile)."""
    base = yaml.safe_load(Path(params_path).read_text(encoding="utf-8")) or {}
    return parse_params(merge(base, load_profile(profile_path)), f"{params_path} + {profile_path}")


_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*")
_KEYWORDS = {"true", "false", "null", "none", "nan", "inf"}


def _hydra_value(value: Any) -> str:
    """A value in the override grammar of `dvc exp run -S` (Hydra's): strings quoted where they would
    read as something else, the rest as JSON."""
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and value.lower() not in _KEYWORDS:
            return value
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_hydra_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_hydra_value(v) for v in value) + "]"
    return json.dumps(value)  # numbers, true/false, null


def dvc_overrides(base: dict[str, Any], profile: dict[str, Any], prefix: str = "") -> list[str]:
    """The `-S` overrides that turn `base` into `merge(base, profile)`."""
    overrides = []
    for key, value in profile.items():
        path = f"{prefix}{key}"
        if key not in base:
            overrides.append(f"+{path}={_hydra_value(value)}")
        elif isinstance(value, dict) and isinstance(base[key], dict) and path not in REPLACED:
            overrides += dvc_overrides(base[key], value, f"{path}.")
        elif isinstance(value, dict) or isinstance(base[key], dict):
            overrides += [f"~{path}", f"+{path}={_hydra_value(value)}"]  # replace a mapping whole
        else:
            overrides.append(f"{path}={_hydra_value(value)}")
    return overrides
