"""The Optuna study's storage, made to ride through a database restart.

Optuna's `RDBStorage` keeps pooled connections that a PostgreSQL (or MySQL) restart leaves
dead, and it does not retry: the first call after a restart fails, and Ray's OptunaSearch
swallows the failure of a `tell`, so the study keeps that trial RUNNING for good. Here a
pooled connection is tested before use (`pool_pre_ping`), and a call that loses its
connection (the server is down or restarting) is retried with backoff for up to
`retry_s` seconds before the error goes up. A failed commit whose error names no
connection is retried `COMMIT_RETRIES` times (a restart can leave such errors behind);
integrity errors, and errors outside a commit that are not about the connection, are raised at
once.
"""
from __future__ import annotations

import functools
import time

import optuna

RETRY_S = 120.0   # how long a call waits for the database to come back
COMMIT_RETRIES = 3   # a commit that failed for another reason, retried this often: a restart can
                     # surface as an error that names no connection (a session left mid-transaction)


def _connection_lost(exc: BaseException) -> bool:
    """Whether `exc` (or an error in its chain) says the connection to the database was lost."""
    from sqlalchemy import exc as sa

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (sa.OperationalError, sa.InterfaceError, sa.PendingRollbackError)) or \
                (isinstance(exc, sa.DBAPIError) and exc.connection_invalidated):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _commit_failed(exc: BaseException) -> bool:
    """Optuna's wrapper of a failed commit (any SQLAlchemy error but an integrity one)."""
    from sqlalchemy import exc as sa

    return isinstance(exc, optuna.exceptions.StorageInternalError) and \
        isinstance(exc.__cause__, sa.SQLAlchemyError) and not isinstance(exc.__cause__, sa.IntegrityError)


def _retrying(method):
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        deadline, delay, commits = time.monotonic() + self.retry_s, 0.2, 0
        while True:
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:
                lost = _connection_lost(exc)
                if not lost and _commit_failed(exc) and commits < COMMIT_RETRIES:
                    commits += 1
                elif not lost or time.monotonic() + delay > deadline:
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
