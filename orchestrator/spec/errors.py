"""`SpecError`, and pydantic's validation errors rendered as one line at a dotted path."""
from __future__ import annotations

import re
import types
import typing
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ValidationError

from orchestrator.secrets import redact

__all__ = ["SpecError", "from_validation_error"]

class SpecError(ValueError):
    """A sweep spec is wrong; `field` is the dotted path at fault, `str(e)` is one line."""

    def __init__(self, field: str, message: str, source: str | None = None):
        self.field = field
        self.message = redact(re.sub(r"\s*\n\s*", " ", str(message)).strip())   # no URI password in an error
        self.source = source      # the file (or "<spec>") the spec came from, if known
        super().__init__(f"{field}: {self.message}")

    def __reduce__(self):         # keep field and message through pickling (Ray ships errors)
        return type(self), (self.field, self.message, self.source)


def from_validation_error(err: ValidationError, data: dict, source: str, root: type[BaseModel]) -> SpecError:
    """The first of pydantic's errors, as a SpecError at a plain dotted path (`root`: the validated model)."""
    error = err.errors(include_url=False)[0]
    loc, kind, value = error["loc"], error["type"], error.get("input")
    path = _dotted(loc, data)
    if kind == "extra_forbidden":
        model = _annotation_at(root, loc[:-1])
        known = f" (expected one of: {', '.join(model.model_fields)})" if _is_model(model) else ""
        message = f"unknown key{known}"
    elif kind == "missing":
        message = "required"
        if loc[-2:] == ("asha", "scalarize"):
            message += ": asha ranks trials on one number; give scalarize: {metric: weight, ...}"
    elif kind in ("union_tag_invalid", "union_tag_not_found"):
        key = error["ctx"]["discriminator"].strip("'")
        path = f"{path}.{key}"
        tags = ", ".join(_union_tags(_annotation_at(root, loc)))
        got = f" (got {error['ctx']['tag']!r})" if kind == "union_tag_invalid" else ""
        message = f"{'must be' if got else 'required:'} one of: {tags}{got}"
    else:
        message = error["msg"].removeprefix("Value error, ")
        message = message[:1].lower() + message[1:]
        if kind != "value_error":
            message += f" (got {value!r})"
        if isinstance(value, str) and re.fullmatch(r"[-+]?\d+[eE][-+]?\d+", value):
            message += f"; YAML reads {value} as a string, write it with a dot (e.g. 1.0e-5)"
    return SpecError(path or "<spec>", message, source)


def _dotted(loc: tuple, data: Any) -> str:
    """pydantic's loc as ``a.b[0].c``, without the union tags pydantic inserts."""
    out = ""
    node = data
    for n, part in enumerate(loc):
        if isinstance(node, list) and isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if part < len(node) else None
            continue
        if isinstance(node, dict) and part not in node and n < len(loc) - 1 \
                and part in (node.get("type"), node.get("name")):
            continue   # a discriminated union's tag
        out += f".{part}" if out else str(part)
        node = node.get(part) if isinstance(node, dict) else None
    return out


def _annotation_at(root: type[BaseModel], loc: tuple) -> Any:
    """The type pydantic validated at `loc` (tags included), or None."""
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        if _is_model(tp):
            if part not in tp.model_fields:
                return None
            tp = tp.model_fields[part].annotation
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        elif typing.get_origin(tp) is list:
            tp = typing.get_args(tp)[0]
        elif _is_union(tp):
            tp = next((m for m in typing.get_args(tp) if part in _tags_of(m)), None)
        else:
            return None
    return _unwrap(tp)


def _unwrap(tp: Any) -> Any:
    while True:
        if typing.get_origin(tp) is Annotated:
            tp = typing.get_args(tp)[0]
        elif _is_union(tp) and type(None) in typing.get_args(tp) and len(typing.get_args(tp)) == 2:
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        else:
            return tp


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _tags_of(model: Any) -> tuple:
    if not _is_model(model):
        return ()
    for key in ("type", "name"):
        field = model.model_fields.get(key)
        if field is not None and typing.get_origin(field.annotation) is Literal:
            return typing.get_args(field.annotation)
    return ()


def _union_tags(tp: Any) -> list[str]:
    return [tag for m in typing.get_args(tp) for tag in _tags_of(m)] if _is_union(tp) else []
