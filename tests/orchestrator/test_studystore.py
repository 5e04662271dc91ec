"""The study storage's retry covers every call a Study makes, public or not (orchestrator/studystore.py)."""
from __future__ import annotations

import inspect
import re

import optuna
from optuna.storages import _cached_storage

from orchestrator.studystore import RetryingRDBStorage, _retrying, study_storage


def test_every_backend_call_of_the_cached_storage_is_retried():
    # A Study wraps an RDBStorage in _CachedStorage, which calls some private methods of it
    # directly; one left unwrapped fails the sweep on the first call after a database restart.
    called = set(re.findall(r"self\._backend\.(\w+)\(", inspect.getsource(_cached_storage)))
    assert {"_get_trials", "_create_new_trial"} <= called
    for name in called:
        assert getattr(RetryingRDBStorage, name) is not getattr(optuna.storages.RDBStorage, name), name


def test_a_call_that_loses_its_connection_is_retried(tmp_path, monkeypatch):
    from sqlalchemy import exc as sa

    study = optuna.create_study(storage=study_storage(f"sqlite:///{tmp_path}/s.db", retry_s=5.0), study_name="s")
    study.enqueue_trial({"x": 1.0})
    calls = []
    real = optuna.storages.RDBStorage._get_trials

    def restarting(self, *args, **kwargs):   # the first call finds the server going down
        calls.append(1)
        if len(calls) == 1:
            raise sa.OperationalError("SELECT", {}, Exception("the database system is shutting down"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(RetryingRDBStorage, "_get_trials", _retrying(restarting))
    assert len(study.get_trials(deepcopy=False)) == 1 and len(calls) == 2


def test_a_failed_commit_naming_no_connection_is_retried_a_few_times_then_raised():
    import pytest
    from sqlalchemy import exc as sa

    def failing(cause, times=100):
        calls = []

        def call(self):
            calls.append(1)
            if len(calls) > times:
                return "ok"
            try:
                raise cause
            except sa.SQLAlchemyError as e:   # as optuna's _create_scoped_session wraps it
                raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from e
        return calls, _retrying(call)

    class Storage:
        retry_s = 30.0

    calls, call = failing(sa.InvalidRequestError("a session left mid-transaction"))
    with pytest.raises(optuna.exceptions.StorageInternalError):
        call(Storage())
    assert len(calls) == 4                                         # 1 + COMMIT_RETRIES
    calls, call = failing(sa.PendingRollbackError("Can't reconnect until invalid transaction is rolled back"), 4)
    assert call(Storage()) == "ok" and len(calls) == 5             # a lost connection: retried past 3
    calls, call = failing(sa.IntegrityError("INSERT", {}, Exception("duplicate key")))
    with pytest.raises(optuna.exceptions.StorageInternalError):
        call(Storage())
    assert len(calls) == 1                                         # bad data: at once
