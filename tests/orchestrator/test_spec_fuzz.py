"""Spec fuzzing: generated specs and mutations of the shipped ones through the CLI's --dry-run.

Every input is either valid (exit 0, the plan printed) or refused with exit 2 and one line
`error: FIELD: message` naming the field (or the file, or the --set) at fault: never a
traceback, never a file written. Most cases call `orchestrator.sweep.main` in-process for
speed; a handful run the real `python -m orchestrator.sweep` in a subprocess.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.spec.schema import SweepSpec
from orchestrator.sweep import main
from test_sweep_e2e import ROOT, sweep_env

SHIPPED = sorted((ROOT / "search_spaces").glob("*.yaml"))
TOP = set(SweepSpec.model_fields) | {"profiles"}
FUZZ = settings(max_examples=int(os.environ.get("SPEC_FUZZ_EXAMPLES", "100")), deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

scalars = (st.none() | st.booleans() | st.integers(-10**6, 10**12) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=10) | st.sampled_from(["", "1e-5", "-1", "0", "tpe", "none", "pareto_asha", "float",
                                                      "categorical", "maximize", "sqlite:///x.db", "http://u:p@h/"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)


def run_cli(folder: Path, args: list[str]) -> tuple[int, str, str]:
    """`main(args)` in `folder`, its exit code, stdout and stderr; any exception fails the test."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(folder), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exc:   # argparse
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def check_outcome(folder: Path, code: int, stdout: str, stderr: str, data=None) -> None:
    written = sorted(p.name for p in folder.iterdir())
    assert written == ["spec.yaml"], f"files written: {written}"
    assert "Traceback" not in stderr + stdout
    if code == 0:
        assert "# plan" in stdout, stdout
        return
    assert code == 2, (code, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    field = lines[0][len("error: "):].split(": ", 1)[0]
    head = re.split(r"[.\[]", field, maxsplit=1)[0]
    keys = set(data) if isinstance(data, dict) else set()
    assert field.endswith("spec.yaml") or head in TOP | keys | {"--set", "profile"}, lines[0]


def _paths(node, prefix=()):
    """Every path into a nested spec (dict keys and list indices)."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _mutate(data, path, op: str, value):
    if not path:
        return value if op == "replace" else data
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    current = parent[last]
    if op == "delete":
        del parent[last]
    elif op == "replace":
        parent[last] = value
    elif op == "negate" and isinstance(current, (int, float)) and not isinstance(current, bool):
        parent[last] = -current if current else -1
    elif op == "stringify":
        parent[last] = str(current)
    elif op == "extra" and isinstance(current, dict):
        current["unknown_key"] = value
    elif op == "wrap":
        parent[last] = [current]
    elif op == "huge" and isinstance(current, (int, float)) and not isinstance(current, bool):
        parent[last] = current * 10**9 if current else math.inf
    return data


@st.composite
def mutated_specs(draw):
    path = draw(st.sampled_from(SHIPPED))
    data = yaml.safe_load(path.read_text())
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(data))
        where = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["delete", "replace", "negate", "stringify", "extra", "wrap", "huge"]))
        data = _mutate(data, where, op, draw(values))
    profile = draw(st.sampled_from([None, "local", "nope"]))
    return data, profile


@pytest.fixture
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _fresh(folder: Path) -> Path:
    for p in folder.iterdir():
        p.unlink()
    return folder / "spec.yaml"


@FUZZ
@given(case=mutated_specs())
def test_mutated_shipped_specs_are_valid_or_one_line(folder, case):
    data, profile = case
    spec = _fresh(folder)
    spec.write_text(yaml.safe_dump(data, allow_unicode=True))
    args = [str(spec), "--dry-run"] + (["--profile", profile] if profile else [])
    check_outcome(folder, *run_cli(folder, args), data)


@FUZZ
@given(data=st.dictionaries(st.sampled_from(sorted(TOP)) | st.text(max_size=6), values, max_size=8))
def test_generated_specs_are_valid_or_one_line(folder, data):
    spec = _fresh(folder)
    spec.write_text(yaml.safe_dump(data, allow_unicode=True))
    check_outcome(folder, *run_cli(folder, [str(spec), "--dry-run"]), data)


@FUZZ
@given(source=st.sampled_from(SHIPPED), cut=st.integers(0, 10**6), junk=st.text(max_size=12),
       kind=st.sampled_from(["truncate", "insert", "drop_line", "dup_line", "indent"]))
def test_mangled_yaml_text_is_valid_or_one_line(folder, source, cut, junk, kind):
    text = source.read_text()
    lines = text.splitlines(keepends=True)
    at, line = cut % (len(text) + 1), cut % len(lines)
    text = {"truncate": lambda: text[:at], "insert": lambda: text[:at] + junk + text[at:],
            "drop_line": lambda: "".join(lines[:line] + lines[line + 1:]),
            "dup_line": lambda: "".join(lines[:line + 1] + lines[line:]),
            "indent": lambda: "".join(lines[:line] + [" " + lines[line]] + lines[line + 1:])}[kind]()
    spec = _fresh(folder)
    spec.write_text(text)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    check_outcome(folder, *run_cli(folder, [str(spec), "--dry-run"]), data)


@FUZZ
@given(source=st.sampled_from(SHIPPED), picks=st.lists(st.integers(0, 10**6), min_size=1, max_size=3),
       raw=st.lists(st.text(max_size=10) | st.sampled_from(["0", "-1", "[1, 2]", "{a: 1}", "null", ".nan", "1e400"]),
                    min_size=3, max_size=3))
def test_set_overrides_are_valid_or_one_line(folder, source, picks, raw):
    data = yaml.safe_load(source.read_text())
    paths = [p for p in _paths(data) if p]
    sets = [".".join(map(str, paths[i % len(paths)])) + "=" + raw[n] for n, i in enumerate(picks)]
    spec = _fresh(folder)
    spec.write_text(source.read_text())
    args = [str(spec), "--dry-run"] + [a for s in sets for a in ("--set", s)]
    check_outcome(folder, *run_cli(folder, args), data)


@pytest.mark.parametrize("mutation", [
    ("search", "num_trials", -3), ("parameters", "lr", {"type": "float", "low": "a", "high": 1}),
    ("scheduler", "name", None), ("tracking", "uri", 7), ("objectives", 0, "val_accuracy"),
])
def test_the_cli_in_a_subprocess_refuses_mutations_with_one_line(tmp_path, mutation):
    data = yaml.safe_load((ROOT / "search_spaces" / "synthetic.yaml").read_text())
    section, key, value = mutation
    data.setdefault(section, {})[key] = value   # a section the shipped spec leaves to its default
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(data))
    proc = subprocess.run([sys.executable, "-m", "orchestrator.sweep", str(spec), "--dry-run"], cwd=tmp_path,
                          env=sweep_env(tmp_path), capture_output=True, text=True, timeout=120)
    check_outcome(tmp_path, proc.returncode, proc.stdout, proc.stderr, data)
    assert proc.returncode == 2 and section in proc.stderr
