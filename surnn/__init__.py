"""Selective-Update RNNs: a layer whose neurons each carry a binary update switch.

Names are imported on first use, so that `surnn.trainable` (the contract an orchestrator
reads) can be imported without loading torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "SuRNN": "surnn.cell",
    "SuRNNConfig": "surnn.config",
    "scan_ref": "surnn.reference",
    "SettingError": "surnn.trainable",
    "Trainable": "surnn.trainable",
    "load": "surnn.deploy",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
