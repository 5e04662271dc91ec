"""The Optuna study's storage, made to ride through a database restart.

Optuna's `RDBStorage` keeps pooled connections that a PostgreSQL (or MySQL) restart leaves
dead, and it does not retry: the first call after a restart fails, and Ray's OptunaSearch
swallows the failure of a `tell`, so the study keeps that trial RUNNING for good. Here a
pooled connection is tested before use (`pool_pre_ping`), and a call that loses its
connection (the server is down or restarting) is retried with backoff for up to
`retry_s` seconds before the error goes up. Errors that are not about the connection
(bad data, integrity) are raised at once.
"""
from __future__ import annotations

import functools
import time

import optuna

RETRY_S = 120.0   # how long a call waits for the database to come back


def _connection_lost(exc: BaseException) -> bool:
    from sqlalchemy import exc as sa

    cause = exc.__cause__ if isinstance(exc, optuna.exceptions.StorageInternalError) else exc
    return isinstance(cause, (sa.OperationalError, sa.InterfaceError)) or \
        (isinstance(cause, sa.DBAPIError) and cause.connection_invalidated)


def _retrying(method):
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        deadline, delay = time.monotonic() + self.retry_s, 0.2
        while True:
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:
                if not _connection_lost(exc) or time.monotonic() + delay > deadline:
                    raise
                time.sleep(delay)
                delay = min(2 * delay, 5.0)
    return call


class RetryingRDBStorage(optuna.storages.RDBStorage):
    """`RDBStorage` whose every storage call survives a lost connection for `retry_s` seconds."""

    def __init__(self, url: str, retry_s: float = RETRY_S, **kwargs):
        self.retry_s = retry_s
        engine_kwargs = dict(kwargs.pop("engine_kwargs", None) or {})
        if not url.startswith("sqlite"):
            engine_kwargs.setdefault("pool_pre_ping", True)
        _retrying(optuna.storages.RDBStorage.__init__)(self, url, engine_kwargs=engine_kwargs, **kwargs)


# Optuna's _CachedStorage (which every Study puts in front of an RDBStorage) calls these
# private methods of its backend directly: they need the retry as much as the public ones.
_CACHED_STORAGE_CALLS = ("_create_new_trial", "_set_trial_param", "_get_best_trial_id", "_get_trials",
                         "_get_stale_trial_ids")

for _name, _method in vars(optuna.storages.RDBStorage).items():
    if callable(_method) and (not _name.startswith("_") or _name in _CACHED_STORAGE_CALLS) \
            and _name not in ("remove_session",):
        setattr(RetryingRDBStorage, _name, _retrying(_method))


def study_storage(url: str, retry_s: float = RETRY_S) -> optuna.storages.RDBStorage:
    """The storage for a study URL (SQLite, PostgreSQL, MySQL)."""
    return RetryingRDBStorage(url, retry_s=retry_s)
