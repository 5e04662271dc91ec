"""SweepSpec: every bad spec fails once, at the edge, naming the field; good specs resolve."""
import copy
import pickle

import pytest
import yaml

from orchestrator.spec import CategoricalParam, Constraint, IntParam, SpecError, SweepSpec, load_spec, parse_spec

EXAMPLE = """
name: listops-surnn
task: {name: listops, min_length: 500, max_length: 2000}
model: {cell: gru, gate: rhythmic, num_layers: 4}
training: {epochs: 9, batch_size: 32}
objectives:
  - {metric: val_accuracy, goal: maximize, ref: 0.1}
  - {metric: update_rate, goal: minimize, ref: 1.0}
parameters:
  gate_threshold: {type: float, low: -0.5, high: 0.9}
  sparsity_lambda: {type: float, low: 1.0e-5, high: 1.0e-1, log: true}
  hidden_size: {type: categorical, values: [64, 128, 256]}
  lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
search: {sampler: tpe, seed: 0, num_trials: 64, max_concurrent: 8, constraints: ["update_rate <= 0.5"]}
scheduler: {name: pareto_asha, grace_period: 2, reduction_factor: 3}
resources_per_trial: {cpu: 4, gpu: 0.5}
failure: {max_failures_per_trial: 2, max_failed_trials: 10}
tracking: {uri: sqlite:///mlflow.db, experiment: lra-listops}
trainable: surnn.train:train
profiles:
  local:
    training: {epochs: 2}
    search: {num_trials: 4, max_concurrent: 1}
    resources_per_trial: {gpu: 0}
kubernetes: {namespace: sweeps, image: surnn:latest}
"""


@pytest.fixture
def data() -> dict:
    return yaml.safe_load(EXAMPLE)


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(EXAMPLE)
    return path


def _expect(data: dict, field: str, phrase: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    err = info.value
    assert (err.field, str(err)) == (field, f"{field}: {err.message}")
    assert phrase in err.message
    assert "\n" not in str(err)
    return err


def _set(**changes):
    """A mutation of the example: dotted key (with / for dots inside names) -> value, or None to delete."""
    def apply(d):
        for key, value in changes.items():
            *heads, last = [p.replace("/", ".") for p in key.split("__")]
            node = d
            for head in heads:
                node = node[int(head)] if isinstance(node, list) else node.setdefault(head, {})
            if value is None:
                del node[last]
            elif isinstance(node, list):
                node[int(last)] = value
            else:
                node[last] = value
    return apply


BAD_SPECS = [
    pytest.param(_set(sweeep=1), "sweeep", "unknown key (expected one of: name, task, tasks", id="unknown-top-level-key"),
    pytest.param(_set(search__samplr="tpe"), "search.samplr", "unknown key (expected one of: sampler, seed",
                 id="unknown-key-in-search"),
    pytest.param(_set(parameters__lr__lo=1), "parameters.lr.lo", "unknown key (expected one of: type, low, high",
                 id="unknown-key-in-parameter-no-union-tag"),
    pytest.param(_set(search__num_trials="many"), "search.num_trials", "valid integer (got 'many')",
                 id="wrong-type"),
    pytest.param(_set(parameters__lr__low="small"), "parameters.lr.low", "valid number (got 'small')",
                 id="wrong-type-in-parameter"),
    pytest.param(_set(parameters__lr__low="1e-5"), "parameters.lr.low", "write it with a dot",
                 id="yaml-1e-5-is-a-string"),
    pytest.param(_set(parameters__lr__low=1, parameters__lr__high=0.5), "parameters.lr.low",
                 "must be < high (got 1", id="low-not-below-high"),
    pytest.param(_set(parameters__sparsity_lambda__low=0.0), "parameters.sparsity_lambda.low",
                 "must be > 0 when log is true", id="log-with-low-zero"),
    pytest.param(_set(parameters__lr__step=0.001), "parameters.lr.step", "cannot be combined with log",
                 id="step-with-log"),
    pytest.param(_set(parameters__lr__step=1.0), "parameters.lr.step", "cannot be combined with log",
                 id="float-step-one-with-log"),
    pytest.param(_set(parameters__n={"type": "int", "low": 1, "high": 64, "log": True, "step": 2}),
                 "parameters.n.step", "cannot be combined with log", id="int-step-with-log"),
    pytest.param(_set(parameters__gate_threshold__step=-0.1), "parameters.gate_threshold.step", "must be > 0",
                 id="negative-step"),
    pytest.param(_set(parameters__hidden_size__values=[]), "parameters.hidden_size.values", "non-empty",
                 id="empty-categorical"),
    pytest.param(_set(parameters__lr__type="real"), "parameters.lr.type",
                 "must be one of: float, int, categorical (got 'real')", id="unknown-parameter-type"),
    pytest.param(_set(parameters__lr__type=None), "parameters.lr.type", "required: one of: float, int",
                 id="missing-parameter-type"),
    pytest.param(_set(parameters__epochs={"type": "int", "low": 1, "high": 9}), "parameters.epochs",
                 "epochs is the fidelity", id="epochs-searched"),
    pytest.param(_set(objectives__1__metric="val_accuracy"), "objectives[1].metric",
                 "duplicate metric 'val_accuracy' (already objectives[0])", id="duplicate-objective"),
    pytest.param(_set(objectives=[]), "objectives", "at least one objective", id="no-objectives"),
    pytest.param(_set(objectives__0__goal="max"), "objectives[0].goal", "'maximize' or 'minimize'",
                 id="bad-goal"),
    pytest.param(_set(objectives__0__ref=float("inf")), "objectives[0].ref", "finite", id="infinite-ref"),
    pytest.param(_set(search__sampler="cmaes"), "search.sampler", "'tpe', 'nsga2', 'gp' or 'random' (got 'cmaes')",
                 id="unknown-sampler"),
    pytest.param(_set(search__max_concurrent=0), "search.max_concurrent", "must be >= 1", id="zero-concurrency"),
    pytest.param(_set(search__constraints=["update_rate < 0.5"]), "search.constraints[0]",
                 "expected '<metric> <= <number>'", id="malformed-constraint"),
    pytest.param(_set(search__constraints=["update_rat <= 0.5"]), "search.constraints[0]",
                 "'update_rat' is never reported", id="constraint-metric-not-reported"),
    pytest.param(_set(scheduler={"name": "hyperband"}), "scheduler.name",
                 "must be one of: none, pareto_asha, asha (got 'hyperband')", id="unknown-scheduler"),
    pytest.param(_set(scheduler={"name": "asha", "grace_period": 1}), "scheduler.scalarize",
                 "required: asha ranks trials on one number", id="asha-without-scalarize"),
    pytest.param(_set(scheduler={"name": "asha", "scalarize": {"val_acc": 1.0}}), "scheduler.scalarize.val_acc",
                 "'val_acc' is never reported", id="scalarize-metric-not-reported"),
    pytest.param(_set(scheduler={"name": "asha", "scalarize": {"val_accuracy": 1.0, "update_rate": 0}}),
                 "scheduler.scalarize.update_rate", "weight must be nonzero", id="scalarize-zero-weight"),
    pytest.param(_set(scheduler={"name": "pareto_asha", "scalarize": {"val_accuracy": 1.0}}),
                 "scheduler.scalarize", "unknown key", id="scalarize-on-pareto-asha"),
    pytest.param(_set(scheduler__grace_period=0), "scheduler.grace_period", "must be >= 1", id="zero-grace-period"),
    pytest.param(_set(scheduler__grace_period=10), "scheduler.grace_period", "must be <= epochs (got 10 > 9)",
                 id="grace-period-beyond-epochs"),
    pytest.param(_set(scheduler__reduction_factor=1), "scheduler.reduction_factor", "must be > 1",
                 id="reduction-factor-one"),
    pytest.param(_set(search__budget={"epochs": 8}), "search.budget.epochs", "must be >= one trial's 9 epochs",
                 id="budget-below-one-trial"),
    pytest.param(_set(search__budget={"hours": 0}), "search.budget.hours", "must be > 0", id="zero-hours"),
    pytest.param(_set(scheduler__brackets=0), "scheduler.brackets", "must be >= 1", id="zero-brackets"),
    pytest.param(_set(scheduler__min_agreement=1.5), "scheduler.min_agreement", "must be in [-1, 1]",
                 id="agreement-above-1"),
    pytest.param(_set(resources_per_trial__cpu=0), "resources_per_trial.cpu", "must be > 0", id="zero-cpu"),
    pytest.param(_set(resources_per_trial__gpu=-1), "resources_per_trial.gpu", "must be >= 0", id="negative-gpu"),
    pytest.param(_set(failure__max_failed_trials=-1), "failure.max_failed_trials", "must be >= 0",
                 id="negative-failures"),
    pytest.param(_set(training__epochs=None), "training.epochs", "fidelity (max_t)", id="missing-epochs"),
    pytest.param(_set(training__epochs=0), "training.epochs", "must be an integer >= 1", id="zero-epochs"),
    pytest.param(_set(tracking={"uri": "http://mlflow:5000"}), "tracking.study_storage",
                 "required when tracking.uri is not a sqlite", id="remote-tracking-without-study-storage"),
    pytest.param(_set(objectives__0__metric="val_acc"), "objectives[0].metric",
                 "'val_acc' is never reported by surnn.train:train (it reports: ", id="objective-never-reported"),
    pytest.param(_set(parameters__hidden_size=None, model__hidden_size=0), "model.hidden_size",
                 "must be >= 1, got 0", id="bad-fixed-setting"),
    pytest.param(_set(parameters__hidden_size__values=[0, 64]), "parameters.hidden_size.values",
                 "must be >= 1, got 0", id="bad-categorical-value"),
    pytest.param(_set(training__learning_rate=0.1), "training.learning_rate",
                 "unknown training setting 'learning_rate'", id="unknown-training-setting"),
    pytest.param(_set(training__task_options={"seed": 1}), "training.task_options",
                 "in the task block", id="task-options-outside-task-block"),
    pytest.param(_set(task__min_length=2000, task__max_length=500), "task.min_length",
                 "must be < max_length - 1 (got 2000 with max_length 500)", id="bad-task-option"),
    pytest.param(_set(task__min_lenght=20), "task.min_lenght", "unknown option(s) 'min_lenght' for task 'listops'",
                 id="unknown-task-option"),
    pytest.param(_set(**{"parameters__task_options/min_length": {"type": "int", "low": 100, "high": 1500},
                         "task__min_length": None, "task__max_length": 1000}),
                 "parameters.task_options.min_length.high", "must be < max_length - 1 (got 1500 with max_length 1000)",
                 id="bad-high-end-of-dotted-parameter"),
    pytest.param(_set(trainable="nosuchmodule:train"), "trainable",
                 "cannot import 'nosuchmodule:train' (ModuleNotFoundError", id="trainable-not-importable"),
    pytest.param(_set(trainable="surnn.train:nosuch"), "trainable", "cannot import 'surnn.train:nosuch'",
                 id="trainable-attribute-missing"),
    pytest.param(_set(trainable="surnn.train"), "trainable", "expected 'module:function'",
                 id="trainable-without-colon"),
    pytest.param(_set(trainable="surnn.train:CHECKPOINT_FILE"), "trainable", "is not callable",
                 id="trainable-not-callable"),
    pytest.param(_set(tasks=[{"name": "adding"}]), "task", "give either task or tasks", id="task-and-tasks"),
    pytest.param(_set(task=None), "task", "give either task or tasks", id="neither-task-nor-tasks"),
]


@pytest.mark.parametrize("mutate, field, phrase", BAD_SPECS)
def test_bad_spec_names_the_field(data, mutate, field, phrase):
    mutate(data)
    _expect(data, field, phrase)


def test_unknown_task_is_reported_against_the_task(data):
    data["task"]["name"] = "listop"
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    # surnn's task_info raises KeyError for an unknown name (before make_options' ValueError);
    # once it raises the ValueError the error moves to task.name.
    assert info.value.field in ("task", "task.name") and "'listop'" in info.value.message


def test_suite_error_names_the_task(data):
    del data["task"]
    data["tasks"] = [{"name": "listops", "max_length": 2000}, {"name": "adding", "training": {"epochs": 3}}]
    err = _expect(data, "objectives[0].metric", "'val_accuracy' is never reported")
    assert err.message.endswith("(it reports: " + err.message.split("(it reports: ")[1])
    assert "(task 'adding')" in err.message
    data["tasks"][1]["name"] = "listops"
    _expect(data, "tasks[1].name", "duplicate task 'listops' (already tasks[0])")
    data["tasks"][1] = {"name": "adding", "seq_len": 1}
    _expect(data, "tasks[1].seq_len", "must be >= 2")


def test_example_loads(spec_file):
    spec = load_spec(spec_file)
    (block,) = spec.task_blocks()
    assert (block.name, block.options) == ("listops", {"min_length": 500, "max_length": 2000})
    assert spec.metric_names == ["val_accuracy", "update_rate"] and spec.modes == ["max", "min"]
    assert [o.sign for o in spec.objectives] == [-1.0, 1.0]
    assert spec.max_t(block) == 9
    assert isinstance(spec.parameters["hidden_size"], CategoricalParam)
    assert spec.search.constraints == [Constraint(metric="update_rate", op="<=", bound=0.5)]
    assert spec.search.constraints[0].violation(0.7) == pytest.approx(0.2)
    assert spec.scheduler.name == "pareto_asha" and spec.scheduler.grace_period == 2
    assert spec.resources_per_trial.gpu == 0.5
    assert spec.tracking.study_storage == spec.study_storage_url() == "sqlite:///optuna.db"
    assert spec.tracking.storage_path == "./ray_results"
    assert spec.kubernetes == {"namespace": "sweeps", "image": "surnn:latest"}
    from surnn.train import train
    assert spec.trainable_fn() is train


def test_resolved_spec_round_trips_through_yaml(spec_file):
    spec = load_spec(spec_file, profile="local")
    text = spec.to_yaml()
    assert "profiles" not in yaml.safe_load(text) and "update_rate <= 0.5" in text
    again = parse_spec(yaml.safe_load(text))
    assert again.model_dump(exclude={"profiles"}) == spec.model_dump(exclude={"profiles"})


@pytest.mark.parametrize("given, expected", [
    ({}, ("promotion", 0.5)), ({"kind": "stop"}, ("stop", 0.7)), ({"kind": "promotion"}, ("promotion", 0.5)),
    ({"kind": "stop", "min_agreement": None}, ("stop", None)), ({"min_agreement": 0.2}, ("promotion", 0.2))])
def test_min_agreement_defaults_by_kind_unless_given(data, given, expected):
    data["scheduler"] = {"name": "pareto_asha", **given}
    spec = parse_spec(data)
    assert (spec.scheduler.kind, spec.scheduler.min_agreement) == expected
    again = parse_spec(yaml.safe_load(spec.to_yaml()))   # a written spec reads back the same
    assert (again.scheduler.kind, again.scheduler.min_agreement) == expected


def test_defaults_fill_in(data):
    for key in ("scheduler", "resources_per_trial", "failure", "tracking", "trainable", "profiles", "kubernetes"):
        del data[key]
    spec = parse_spec(data)
    assert spec.scheduler.name == "pareto_asha" and spec.scheduler.scalarize is None   # the measured default
    assert (spec.scheduler.grace_period, spec.scheduler.reduction_factor, spec.scheduler.brackets,
            spec.scheduler.kind, spec.scheduler.min_agreement) == (1, 3.0, 3, "promotion", 0.5)
    assert spec.search.sampler == "tpe"
    assert spec.trainable == "surnn.train:train"
    assert (spec.resources_per_trial.cpu, spec.resources_per_trial.gpu) == (1.0, 0.0)
    assert spec.tracking.experiment == "listops-surnn"
    assert spec.kubernetes is None and spec.failure.max_failed_trials is None


@pytest.mark.parametrize("uri, study", [("sqlite:///runs/mlflow.db", "sqlite:///runs/optuna.db"),
                                        ("sqlite:////abs/mlflow.db", "sqlite:////abs/optuna.db")])
def test_study_storage_sits_beside_mlflow_db(data, uri, study):
    data["tracking"] = {"uri": uri}
    assert parse_spec(data).tracking.study_storage == study


def test_profile_deep_merges(spec_file):
    spec = load_spec(spec_file, profile="local")
    assert spec.training == {"epochs": 2, "batch_size": 32}          # batch_size kept
    assert (spec.search.num_trials, spec.search.max_concurrent, spec.search.sampler) == (4, 1, "tpe")
    assert (spec.resources_per_trial.cpu, spec.resources_per_trial.gpu) == (4.0, 0.0)
    assert spec.max_t(spec.task) == 2


def test_overrides_set_typed_values_and_create_keys(spec_file):
    spec = load_spec(spec_file, profile="local", overrides=[
        "search.num_trials=3", "task.training.weight_decay=0.001", "model.dropout=0.1", "objectives.1.ref=0.8",
        "scheduler=none", "kubernetes.labels.team=ml",
    ])
    assert spec.search.num_trials == 3 and isinstance(spec.search.num_trials, int)
    assert spec.task.training == {"weight_decay": 0.001} and spec.model["dropout"] == 0.1
    assert spec.objectives[1].ref == 0.8 and spec.scheduler.name == "none"
    assert spec.kubernetes["labels"] == {"team": "ml"} and spec.kubernetes["namespace"] == "sweeps"


def test_overrides_reach_dotted_parameter_names(data, tmp_path):
    data["parameters"]["task_options.max_length"] = {"type": "int", "low": 1000, "high": 2000}
    data["task"] = {"name": "listops"}
    path = tmp_path / "dotted.yaml"
    path.write_text(yaml.safe_dump(data))
    spec = load_spec(path, overrides=["parameters.task_options.max_length.high=3000",
                                      "parameters.task_options.min_length.low=10",
                                      "parameters.task_options.min_length.high=100",
                                      "parameters.task_options.min_length.type=int"])
    assert spec.parameters["task_options.max_length"] == IntParam(type="int", low=1000, high=3000)
    assert spec.parameters["task_options.min_length"] == IntParam(type="int", low=10, high=100)


def test_dotted_parameter_sets_a_nested_setting(data):
    data["parameters"]["task_options.max_length"] = {"type": "int", "low": 1000, "high": 4000, "step": 500}
    del data["task"]["max_length"]
    spec = parse_spec(data)
    config = spec.trial_config(spec.task, {"lr": 0.01, "task_options.max_length": 1500})
    assert config["task_options"] == {"min_length": 500, "max_length": 1500} and config["lr"] == 0.01
    assert spec.fixed_config(spec.task)["task_options"] == {"min_length": 500}   # not mutated


def test_fixed_config_merges_later_sections_over_earlier(data):
    data["model"] = {"num_layers": 1, "cell": "rnn", "dropout": 0.1, "seed": 1}
    data["training"] = {"epochs": 9, "num_layers": 2, "cell": "lstm", "dropout": 0.2}
    data["task"].update(model={"num_layers": 3, "cell": "gru"}, training={"num_layers": 4, "epochs": 5})
    spec = parse_spec(data)
    assert spec.fixed_config(spec.task) == {
        "num_layers": 4, "cell": "gru", "dropout": 0.2, "seed": 1, "epochs": 5,
        "task": "listops", "task_options": {"min_length": 500, "max_length": 2000}}
    assert spec.max_t(spec.task) == 5


def test_parameter_overrides_a_fixed_setting(data):
    data["parameters"]["num_layers"] = {"type": "int", "low": 1, "high": 2}     # model.num_layers is 4
    spec = parse_spec(data)
    assert spec.fixed_config(spec.task)["num_layers"] == 4
    assert spec.trial_config(spec.task, {"num_layers": 2})["num_layers"] == 2


def test_task_block_may_list_its_own_objectives(data):
    del data["task"]
    own = [{"metric": "val_mse", "goal": "minimize", "ref": 0.2}, {"metric": "update_rate", "goal": "minimize"}]
    data["tasks"] = [{"name": "listops"}, {"name": "adding", "seq_len": 100, "objectives": own}]
    spec = parse_spec(data)
    listops, adding = spec.task_blocks()
    assert [o.metric for o in spec.objectives_for(listops)] == spec.metric_names == ["val_accuracy", "update_rate"]
    assert [(o.metric, o.mode, o.ref) for o in spec.objectives_for(adding)] == [("val_mse", "min", 0.2),
                                                                               ("update_rate", "min", None)]
    assert adding.options == {"seq_len": 100}
    assert parse_spec(yaml.safe_load(spec.to_yaml())).tasks[1].objectives == adding.objectives
    own[1]["metric"] = "val_mse"
    _expect(data, "tasks[1].objectives[1].metric", "duplicate metric 'val_mse' (already tasks[1].objectives[0])")
    own[1]["metric"] = "val_accuracy"
    _expect(data, "tasks[1].objectives[1].metric", "'val_accuracy' is never reported by surnn.train:train")


def test_suite_gives_one_block_per_task(data):
    del data["task"]
    data["scheduler"] = {"name": "none"}
    data["tasks"] = [{"name": "listops", "max_length": 1000, "training": {"lr": 1.0e-3, "epochs": 3}},
                     {"name": "selective_copy", "seq_len": 256}]
    del data["parameters"]["lr"]
    spec = parse_spec(data)
    assert [b.name for b in spec.task_blocks()] == ["listops", "selective_copy"]
    assert [spec.max_t(b) for b in spec.task_blocks()] == [3, 9]
    assert spec.fixed_config(spec.tasks[1])["task_options"] == {"seq_len": 256}


def test_asha_scalarizes_signed_weights(data):
    data["scheduler"] = {"name": "asha", "grace_period": 1, "scalarize": {"val_accuracy": 1.0, "update_rate": -0.5}}
    spec = parse_spec(data)
    assert spec.scheduler.scalarize == {"val_accuracy": 1.0, "update_rate": -0.5}


def test_unknown_profile(spec_file):
    with pytest.raises(SpecError, match=r"^profile: unknown profile 'cloud' \(expected one of: local\)$"):
        load_spec(spec_file, profile="cloud")


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert (info.value.field, info.value.message) == (str(path), "no such file")


@pytest.mark.parametrize("text, phrase", [
    ("name: x\nsearch: {num_trials: 3\n", "invalid YAML at line 3, column 1"),
    ("name: x\nname: y\n", "invalid YAML at line 2, column 1: duplicate key 'name'"),
    ("- name: x\n", "expected a mapping at the top level (got list)"),
    ("", "expected a mapping at the top level (got NoneType)"),
])
def test_unreadable_yaml_names_the_file(tmp_path, text, phrase):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.field == str(path) and phrase in info.value.message and "\n" not in str(info.value)


@pytest.mark.parametrize("override, phrase", [
    ("search.num_trials", "malformed override 'search.num_trials' (expected key.path=value)"),
    ("=3", "malformed override"),
    ("search..seed=3", "malformed override"),
    ("search.num_trials.x=3", "search.num_trials is not a mapping (got int)"),
    ("objectives.5.ref=1", "objectives has no item '5'"),
    ("search.seed=[1", "cannot parse the value"),
])
def test_bad_override(spec_file, override, phrase):
    with pytest.raises(SpecError) as info:
        load_spec(spec_file, overrides=[override])
    assert info.value.field == "--set" and phrase in info.value.message and "\n" not in str(info.value)


def test_overrides_are_validated(spec_file):
    with pytest.raises(SpecError, match=r"^search\.num_trials: must be >= 1 \(got 0\)$"):
        load_spec(spec_file, overrides=["search.num_trials=0"])


def test_spec_error_survives_pickling():
    err = pickle.loads(pickle.dumps(SpecError("a.b", "bad\nthing", "x.yaml")))
    assert (err.field, err.message, err.source, str(err)) == ("a.b", "bad thing", "x.yaml", "a.b: bad thing")


def test_parse_spec_does_not_change_its_input(data):
    before = copy.deepcopy(data)
    parse_spec(data)
    assert data == before


def test_task_blocks_needs_exactly_one_of_task_and_tasks(data):
    spec = parse_spec(data)
    with pytest.raises(SpecError, match="^task: give either task or tasks$"):
        SweepSpec.model_construct(**{**dict(spec), "task": None}).task_blocks()
