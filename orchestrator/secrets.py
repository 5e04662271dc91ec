"""Credentials in URIs never reach MLflow, the console or an error message.

`redact` masks the password of every `scheme://user:password@host` in a text (tracking URI,
Optuna storage URL, Ray address) as `user:***@`; everything that logs, prints or stores such a
URI passes it through here. Credentials belong in the environment instead: MLflow reads
MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD itself, and `tracking.study_storage_env`
names the variable that holds the study's storage URL.
"""
from __future__ import annotations

import re

MASK = "***"
_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*):(?P<password>[^@\s/]*)@")


def redact(text):
    """`text` with every URI password replaced by ***; a non-string passes through unchanged."""
    if not isinstance(text, str):
        return text
    return _CREDENTIALS.sub(lambda m: f"{m.group('head')}:{MASK}@", text)


def redact_address(address: str) -> str:
    """A Ray address as it may be shown: a URI's password masked, a bare `user:pw@host:port` as `***@host:port`."""
    if "://" in address:
        return redact(address)
    return f"{MASK}@{address.rsplit('@', 1)[1]}" if "@" in address else address
