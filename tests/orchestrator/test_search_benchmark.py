"""benchmarks/search_efficiency.py: problems by import path, --json, bad input exits 2."""
import json

import pytest

from benchmarks import search_efficiency, search_problems


def test_json_holds_every_method_and_seed_within_the_budget(tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = search_efficiency.main(["--problem", "benchmarks.search_problems:crossing", "--seeds", "2", "--epochs", "3",
                                 "--budget", "60", "--methods", "tpe_asha_b2_a70", "--table", "--json", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| tpe_asha_b2_a70 |" in printed and "== crossing: 3 epochs per full trial, budget 60" in printed
    res = json.loads(out.read_text())["problems"][0]
    assert set(res["methods"]) == {"random", "tpe_asha_b2_a70"}
    for rec in res["methods"].values():
        assert [r["seed"] for r in rec["runs"]] == [0, 1]
        for run in rec["runs"]:
            assert run["spent"] == 60 == sum(t["epochs"] for t in run["trial_list"])
            spent = [e for e, _ in run["trajectory"]]
            assert spent == sorted(spent) and run["completed"] == len(spent) - 1
    asha = res["methods"]["tpe_asha_b2_a70"]["runs"][0]
    assert asha["stopped"] == sum(asha["stopped_at"].values()) > 0          # rung 1 of 3 epochs cut some
    assert set(asha["stopped_at"]) == {"1"}


def test_problems_report_their_objectives_every_epoch():
    reports = []
    search_problems.dtlz2.train({"x1": 0.5, "x2": 0.5, "x3": 0.5, "x4": 0.5, "x5": 0.5, "epochs": 4}, reports.append)
    assert [r["epoch"] for r in reports] == [1, 2, 3, 4] and all({"f1", "f2", "f3"} <= set(r) for r in reports)
    again = []
    search_problems.dtlz2.train({"x1": 0.5, "x2": 0.5, "x3": 0.5, "x4": 0.5, "x5": 0.5, "epochs": 4}, again.append)
    assert again == reports                                                  # noise seeded by the config


def test_bad_problem_or_method_exits_2(capsys):
    assert search_efficiency.main(["--problem", "benchmarks.search_problems:nope"]) == 2
    assert "benchmarks.search_problems:nope" in capsys.readouterr().err
    assert search_efficiency.main(["--problem", "orchestrator.pareto:hypervolume"]) == 2
    assert "lacks parameters" in capsys.readouterr().err
    assert search_efficiency.main(["--methods", "tpe_hyperband"]) == 2
    assert "unknown method 'tpe_hyperband'" in capsys.readouterr().err


def test_front_bound_finds_how_few_front_points_reach_random_searchs_target(capsys):
    from benchmarks import front_bound

    problem = search_problems.dtlz2.with_epochs(4)
    res = front_bound.bound(problem, [0, 1], 4 * 16, 4, 0.95, draws=60, max_k=30)
    k_med, k_best = res["k_random_on_front"], res["k_best_spread"]
    assert k_med is not None and 1 <= k_best <= k_med              # spreading well never needs more points
    rows = res["rows"]
    assert rows[k_med - 1]["median"] >= res["target"] > rows[k_med - 2]["median"]
    assert res["ceiling"]["random_on_front"] == res["random_median"] / (k_med * 4)
    import numpy as np

    point = problem.values(problem.front_params(np.random.default_rng(1)), 4)
    # on DTLZ2's unit sphere, scaled by what is left of the learning curve at the last epoch
    assert abs(float(np.linalg.norm(point)) - (1.0 + 0.5 * np.exp(-6.0))) < 1e-9
    assert front_bound.main(["--problem", "benchmarks.search_problems:surrogate", "--seeds", "1"]) == 2
    assert "surrogate: no exact Pareto set known" in capsys.readouterr().err


def test_promotion_rungs_in_the_simulation_pause_resume_and_spend_the_budget_exactly():
    problem = search_problems.zdt1.with_epochs(9)
    run = search_efficiency.simulate(problem, "tpe_asha_promo", 0, 9 * 12, 4)
    assert run["spent"] == 9 * 12 == sum(t["epochs"] for t in run["trial_list"])
    assert run["promoted"] > 0 and run["completed"] > 0
    # every trial ended (completed, stopped, or paused when the budget ran out) or is still running
    assert run["trials"] >= run["completed"] + run["stopped"]
    stop = search_efficiency.simulate(problem, "tpe_asha", 0, 9 * 12, 4)
    assert stop["promoted"] == 0 and stop["trial_list"] != run["trial_list"]
    assert "promotion-type rungs" in search_efficiency.describe("default", 1, 3)
    stop_default = search_efficiency.describe("default_stop", 1, 3)
    assert "promotion-type rungs" not in stop_default and "min_agreement 0.7" in stop_default


def test_a_problem_resumed_from_its_checkpoint_reports_as_an_uninterrupted_run(tmp_path):
    # promotion-type rungs pause a trial and resume it from its checkpoint: the epochs after the
    # pause must be the ones (noise included) a run that never paused reports
    problem = search_problems.crossing.with_epochs(6)
    config = {"x1": 0.3, "x2": 0.1, "x3": 0.2, "x4": 0.5, "speed": 0.7, "epochs": 6}
    whole = []
    problem.train(config, lambda m, checkpoint_dir=None: whole.append(m))

    class Paused(Exception):
        pass

    parts, given = [], []

    def first(metrics, checkpoint_dir=None):
        parts.append(metrics)
        given.append(checkpoint_dir)
        if metrics["epoch"] == 2:
            raise Paused

    with pytest.raises(Paused):
        problem.train({**config, "checkpoint_dir": str(tmp_path)}, first)
    problem.train({**config, "checkpoint_dir": str(tmp_path)}, lambda m, checkpoint_dir=None: parts.append(m))
    assert [m["epoch"] for m in parts] == [1, 2, 3, 4, 5, 6]
    assert parts == whole and given == [str(tmp_path)] * 2


def test_the_search_cost_benchmark_prints_suggestion_and_scheduler_cost(capsys):
    from benchmarks import suggestion_cost

    assert suggestion_cost.main(["random", "40"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("random at 40 observations: median CPU per suggestion")
    assert [line.split(" at ")[0] for line in out[1:]] == ["pareto_asha (promotion-type rungs)",
                                                           "pareto_asha (stop-type rungs)"]
    assert suggestion_cost.main(["annealing", "40"]) == 2
