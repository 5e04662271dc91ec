"""benchmarks/search_efficiency.py: problems by import path, --json, bad input exits 2."""
import json

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
