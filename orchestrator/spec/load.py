"""Reading a spec: YAML, a profile merged over it, ``--set`` overrides, then validation once."""
from __future__ import annotations

import copy
import typing
from pathlib import Path
from typing import Any, Sequence

import yaml
from pydantic import ValidationError

from .checks import check_spec
from .errors import SpecError, from_validation_error
from .schema import SweepSpec

__all__ = ["load_spec", "parse_spec", "apply_profile", "apply_overrides"]

_PARAM_FIELDS = ("type", "low", "high", "log", "step", "values")

def load_spec(path: str | Path, profile: str | None = None, overrides: Sequence[str] = ()) -> SweepSpec:
    """Reads a YAML spec, merges a profile, applies ``key.path=value`` overrides, validates.

    Args:
        path: the YAML file.
        profile: a key of the spec's `profiles`, deep-merged over the spec (mappings merge,
            everything else is replaced).
        overrides: ``key.path=value`` strings (the CLI's ``--set``), applied after the
            profile; the value is parsed as YAML, so ``search.num_trials=3`` sets an int.

    Returns:
        The validated `SweepSpec`.

    Raises:
        SpecError: naming the file, the profile, the override or the field at fault.
    """
    source = str(path)
    data = _read_yaml(Path(path))
    data = apply_profile(data, profile)
    data = apply_overrides(data, overrides)
    return parse_spec(data, source=source)


def parse_spec(data: dict, source: str = "<spec>") -> SweepSpec:
    """Validates a spec already read into plain data (see `load_spec`)."""
    if not isinstance(data, dict):
        raise SpecError(source, f"expected a mapping at the top level (got {type(data).__name__})", source)
    try:
        spec = check_spec(SweepSpec.model_validate(data))
    except ValidationError as err:
        raise from_validation_error(err, data, source, SweepSpec) from None
    except SpecError as err:
        err.source = source
        raise
    return spec


def apply_profile(data: dict, profile: str | None) -> dict:
    """`data` with `profiles[profile]` deep-merged over it (`data` unchanged if profile is None)."""
    if profile is None:
        return data
    profiles = data.get("profiles") or {}
    if not isinstance(profiles, dict):
        raise SpecError("profiles", f"expected a mapping of profile name -> overrides (got {profiles!r})")
    if profile not in profiles:
        known = f"expected one of: {', '.join(profiles)}" if profiles else "the spec defines no profiles"
        raise SpecError("profile", f"unknown profile {profile!r} ({known})")
    over = profiles[profile]
    if not isinstance(over, dict):
        raise SpecError(f"profiles.{profile}", f"expected a mapping (got {type(over).__name__})")
    if "profiles" in over:
        raise SpecError(f"profiles.{profile}.profiles", "a profile cannot define profiles")
    return _deep_merge(data, over)


def apply_overrides(data: dict, overrides: Sequence[str]) -> dict:
    """`data` with every ``key.path=value`` set; missing mappings along the path are created."""
    data = copy.deepcopy(data)
    for text in overrides:
        key, sep, raw = str(text).partition("=")
        parts = key.strip().split(".")
        if not sep or not all(p.strip() for p in parts):
            raise SpecError("--set", f"malformed override {text!r} (expected key.path=value)")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise SpecError("--set", f"cannot parse the value of {text!r} as YAML ({_yaml_problem(err)})") from None
        _set_path(data, [p.strip() for p in parts], value, text)
    return data


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(str(path), "no such file") from None
    except OSError as err:
        raise SpecError(str(path), f"cannot read the spec ({err.strerror or err})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        raise SpecError(str(path), f"invalid YAML {_yaml_problem(err)}") from None
    if not isinstance(data, dict):
        raise SpecError(str(path), f"expected a mapping at the top level (got {type(data).__name__})")
    return data


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, typing.Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            if isinstance(key, typing.Hashable):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    where = f"at line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + str(getattr(err, "problem", None) or err)


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _set_path(data: dict, parts: list[str], value: Any, text: str) -> None:
    node: Any = data
    walked: list[str] = []
    while parts:
        if isinstance(node, list):
            if not parts[0].isdigit() or int(parts[0]) >= len(node):
                raise SpecError("--set", f"{text!r}: {'.'.join(walked)} has no item {parts[0]!r}")
            step = 1
        elif isinstance(node, dict):
            # The longest existing key first, so dotted parameter names are reachable; a new
            # parameter's name runs up to a parameter field (parameters.a.b.high=3: "a.b").
            step = next((n for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in node), None)
            if step is None and walked == ["parameters"]:
                step = len(parts) - 1 if len(parts) > 1 and parts[-1] in _PARAM_FIELDS else len(parts)
            step = step or 1
        else:
            raise SpecError("--set", f"{text!r}: {'.'.join(walked)} is not a mapping (got {type(node).__name__})")
        key, parts = ".".join(parts[:step]), parts[step:]
        walked.append(key)
        index = int(key) if isinstance(node, list) else key
        if not parts:
            node[index] = value
        elif isinstance(node, dict) and key not in node:
            node[key] = {}
        node = node[index]
