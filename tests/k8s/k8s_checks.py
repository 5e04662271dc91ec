"""Strict offline validation of Kubernetes objects, shared by the k8s tests.

Core kinds: kubernetes-validate in strict mode (a misspelt field fails). RayJob / RayCluster:
the KubeRay v1.7 CRDs in ../shared/k8s-schemas, turned into strict JSON Schema.
"""
from __future__ import annotations

import functools
from pathlib import Path

import pytest
import yaml

SCHEMAS = Path(__file__).resolve().parents[2].parent / "shared" / "k8s-schemas"
# Kubernetes versions whose schemas kubernetes-validate 1.37.0 ships: a conservative one that
# managed clusters still run, and the newest.
KUBERNETES_VERSIONS = ("1.34.0", "1.37.0")


@functools.cache
def crd_validator(filename: str):
    """A JSON Schema validator for version v1 of a KubeRay CRD, made strict.

    OpenAPI v3 -> JSON Schema as ../shared/k8s-schemas/README.md says: `nullable` adds "null"
    to the type, `x-kubernetes-int-or-string` becomes integer-or-string, and every object with
    `properties` forbids other keys unless it has `x-kubernetes-preserve-unknown-fields`.
    """
    jsonschema = pytest.importorskip("jsonschema")
    if not SCHEMAS.is_dir():
        pytest.skip(f"KubeRay CRD schemas not found at {SCHEMAS} (../shared/k8s-schemas of the project root)")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load((SCHEMAS / filename).read_text(), Loader=loader)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema = _strict(version["schema"]["openAPIV3Schema"])
    return jsonschema.Draft7Validator(schema)


def _strict(node: dict) -> dict:
    out = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: _strict(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = _strict(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [_strict(sub) for sub in value]
        elif key == "nullable" or key.startswith("x-kubernetes-"):
            continue
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if "properties" in out and "additionalProperties" not in out \
            and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def crd_errors(doc: dict) -> list[str]:
    filename = {"RayJob": "ray.io_rayjobs.yaml", "RayCluster": "ray.io_rayclusters.yaml"}[doc["kind"]]
    errors = crd_validator(filename).iter_errors(doc)
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]


def core_errors(doc: dict, version: str = KUBERNETES_VERSIONS[-1]) -> list[str]:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as err:
        return [f"{'.'.join(map(str, err.path))}: {err.message}"]
    return []
