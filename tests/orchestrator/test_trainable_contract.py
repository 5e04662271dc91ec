"""The trainable contract: setting errors land on the spec field by the setting's name alone,
one importer for `module:attribute`, and a plain-function trainable (as README shows) runs a sweep."""
from __future__ import annotations

import copy
import textwrap

import pytest
import yaml

from orchestrator.spec import SpecError, parse_spec
from surnn.trainable import FunctionTrainable, SettingError, Trainable, TrainableImportError, load_trainable

# The message says something misleading on purpose: a field found by parsing it would be wrong.
MISLEADING = "unknown training setting 'epochs' (training.epochs: nope)"

BLAMING = '''
from surnn.trainable import SettingError, Trainable


class Blaming(Trainable):
    """Rejects every config, naming the setting in config["blame"]."""

    def train(self, config, report):
        return {"status": "completed"}

    def validate(self, config):
        raise SettingError(config["blame"], "unknown training setting 'epochs' (training.epochs: nope)")


blaming = Blaming()


class Holder:
    def plain(config, report):
        return {"status": "completed"}
'''

BASE = {
    "name": "contract", "task": {"name": "toy", "depth": 3},
    "trainable": "blaming_trainable:blaming",
    "training": {"epochs": 2, "lr": 0.1},
    "objectives": [{"metric": "val_accuracy", "goal": "maximize"}, {"metric": "update_rate", "goal": "minimize"}],
    "parameters": {"gate_threshold": {"type": "float", "low": 0.0, "high": 1.0}},
    "search": {"num_trials": 2},
}


@pytest.fixture
def blaming_module(tmp_path, monkeypatch):
    (tmp_path / "blaming_trainable.py").write_text(BLAMING)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("blame, field", [
    ("lr", "training.lr"),                                 # a fixed setting
    ("gate_threshold", "parameters.gate_threshold.low"),   # a searched parameter (its low corner first)
    ("task_options.depth", "task.depth"),                  # a task option
    ("task", "task.name"),                                 # the task itself
    ("dropout", "training.dropout"),                       # a setting the spec leaves to its default
])
def test_setting_error_lands_on_the_field_that_set_it(blaming_module, blame, field):
    data = copy.deepcopy(BASE)
    data["training"]["blame"] = blame
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    assert info.value.field == field
    assert info.value.message == MISLEADING   # passed through whole, never parsed


def test_a_plain_value_error_names_the_task_block(blaming_module, tmp_path):
    (tmp_path / "plain_error.py").write_text(textwrap.dedent('''
        from surnn.trainable import Trainable

        class Plain(Trainable):
            def train(self, config, report):
                return None

            def validate(self, config):
                raise ValueError("lr: looks like a field, but names no setting")

        plain = Plain()
    '''))
    data = {**copy.deepcopy(BASE), "trainable": "plain_error:plain"}
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    assert info.value.field == "task" and "names no setting" in info.value.message


def test_one_importer_takes_dotted_attributes_and_wraps_functions(blaming_module):
    assert isinstance(load_trainable("blaming_trainable:blaming"), Trainable)
    holder = load_trainable("blaming_trainable:Holder.plain")
    assert isinstance(holder, FunctionTrainable) and holder({}, None) == {"status": "completed"}
    assert holder.reports({}) is None and holder.validate({}) is None    # a function has no hooks
    assert isinstance(load_trainable("blaming_trainable:Blaming"), Trainable)   # a class is instantiated
    for ref, phrase in (("blaming_trainable", "expected 'module:function'"),
                        ("blaming_trainable:nothing", "cannot import"),
                        ("blaming_trainable:MISSING.x", "cannot import"),
                        ("blaming_trainable:__doc__", "is not callable")):
        with pytest.raises(TrainableImportError, match=phrase):
            load_trainable(ref)


def test_a_dotted_trainable_validates_in_the_spec(blaming_module):
    data = {**copy.deepcopy(BASE), "trainable": "blaming_trainable:Holder.plain"}
    spec = parse_spec(data)
    assert isinstance(spec.trainable_fn(), FunctionTrainable)


def test_setting_error_pickles_with_its_fields():
    import pickle

    err = pickle.loads(pickle.dumps(SettingError("task_options.x", "must be >= 1", label="toy.x")))
    assert (err.setting, err.message, str(err)) == ("task_options.x", "must be >= 1", "toy.x: must be >= 1")


def test_surnn_errors_carry_the_setting_name():
    from surnn.data import task_info
    from surnn.train_config import TrainConfig

    cases = [(lambda: TrainConfig.from_dict({"lr": -1.0}), "lr"),
             (lambda: TrainConfig.from_dict({"init_update_rate": 2.0}), "init_update_rate"),
             (lambda: TrainConfig.from_dict({"learning_rate": 1.0}), "learning_rate"),
             (lambda: task_info("listops", {"min_length": 5000}), "task_options.min_length"),
             (lambda: task_info("listops", {"min_lenght": 5}), "task_options.min_lenght"),
             (lambda: task_info("no_such_task"), "task")]
    for make, setting in cases:
        with pytest.raises(SettingError) as info:
            make()
        assert info.value.setting == setting


README_TRAINABLE = '''
def train(config, report):
    x = config["gate_threshold"]
    for epoch in range(1, config["epochs"] + 1):
        report({"epoch": epoch, "val_accuracy": x * epoch / config["epochs"], "update_rate": x * x})
    return {"status": "completed"}
'''


def _readme_trainable() -> str:
    """The smallest trainable exactly as README.md shows it."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("# my_trainable.py\n", 1)[1].split("```", 1)[0]
    return block


def test_readme_shows_the_trainable_this_file_runs():
    assert _readme_trainable().strip() == README_TRAINABLE.strip()


@pytest.mark.slow
def test_a_plain_function_trainable_runs_a_sweep(tmp_path):
    from test_sweep_e2e import mlflow_runs, run_sweep, write_spec

    (tmp_path / "my_trainable.py").write_text(_readme_trainable())
    spec = write_spec(tmp_path, trainable="my_trainable:train", search={"num_trials": 4},
                      scheduler="none")
    proc = run_sweep(tmp_path, str(spec), extra_path=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, parents, children = mlflow_runs(tmp_path)
    assert len(parents) == 1 and len(children) == 4
    assert {c.data.tags["sweep.status"] for c in children} == {"completed"}
    for c in children:
        x = float(c.data.params["gate_threshold"])
        assert c.data.metrics["update_rate"] == pytest.approx(x * x)
        assert [m.step for m in client.get_metric_history(c.info.run_id, "val_accuracy")] == [1, 2, 3, 4]
    assert any(c.data.tags["pareto_optimal"] == "true" for c in children)
    assert yaml.safe_load(spec.read_text())["trainable"] == "my_trainable:train"
