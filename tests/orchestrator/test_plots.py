import json
import re

from PIL import Image

from orchestrator.plots import axis_label, write_front_files


def _rows():
    rows = []
    for i, (acc, rate, ms) in enumerate([(0.9, 0.5, 20.0), (0.8, 0.2, 9.0), (0.7, 0.1, 12.0), (0.6, 0.6, 30.0)]):
        rows.append({"trial_id": f"t{i}", "val_accuracy": acc, "update_rate": rate, "inference_ms": ms,
                     "status": "completed", "pareto_rank": 0 if i < 3 else 1, "pareto_optimal": i < 3})
    rows.append({"trial_id": "t9", "val_accuracy": 0.3, "update_rate": 0.9, "inference_ms": 40.0,
                 "status": "stopped", "pareto_rank": None, "pareto_optimal": False})
    return rows


def _panels(html_text: str) -> list:
    return json.loads(re.search(r"const panels = (\[.*?\]);", html_text).group(1))


def test_each_objective_after_the_first_gets_a_panel_labelled_by_it(tmp_path):
    objectives = [("val_accuracy", "maximize", 0.0), ("update_rate", "minimize", 1.0), ("inference_ms", "minimize", None)]
    csv_path, png, page = write_front_files(_rows(), objectives, tmp_path)
    panels = _panels(page.read_text())
    assert [(p[0], p[1]) for p in panels] == [("val_accuracy", "update_rate"), ("val_accuracy", "inference_ms")]
    assert panels[1][3] == axis_label("inference_ms", "minimize")
    assert "sparse engine, batch 1" in panels[1][3] and "open switches" in panels[0][3]
    assert panels[1][3].startswith("inference_ms (minimize)")
    two = write_front_files(_rows(), objectives[:2], tmp_path / "two")[1]
    assert Image.open(png).width > 1.8 * Image.open(two).width     # two panels side by side
    assert csv_path.read_text().splitlines()[0].startswith("trial_id")


def test_a_front_against_inference_time_names_it_on_its_axis(tmp_path):
    objectives = [("val_accuracy", "maximize", 0.0), ("inference_ms", "minimize", None)]
    page = write_front_files(_rows(), objectives, tmp_path)[2].read_text()
    [(x, y, xlabel, ylabel)] = _panels(page)
    assert (x, y) == ("val_accuracy", "inference_ms")
    assert xlabel == "val_accuracy (maximize)" and ylabel.startswith("inference_ms (minimize): ms per sequence")
    assert "<title>Pareto front: inference_ms vs val_accuracy</title>" in page
