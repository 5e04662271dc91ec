"""The experiment scripts run end to end on tiny settings (no accuracy asserted: that is the
long-silence test's job)."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_delayed_recall_experiment_prints_its_table_and_writes_a_png(tmp_path):
    plot = tmp_path / "recall.png"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "delayed_recall.py"), "--silences", "10", "30",
         "--seeds", "0", "--models", "GRU", "LSTM", "suGRU event (default)", "--plot", str(plot)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and "silence" not in line
            and not line.startswith("|---")]
    assert len(rows) == 6, proc.stdout          # 3 models x 2 silences
    assert all(row.split("|")[2].strip() in ("10", "30") for row in rows)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_delayed_recall_experiment_rejects_an_unknown_model(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "delayed_recall.py"), "--models", "LSTM9"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2 and "--models" in proc.stderr


def test_gradient_reach_experiment_shows_the_closed_sugru_copying_its_gradient_exactly(tmp_path):
    plot = tmp_path / "reach.png"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "gradient_reach.py"), "--silences", "5", "200",
         "--seeds", "0", "--models", "suGRU closed", "GRU", "--plot", str(plot)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {(r[1].strip(), r[2].strip()): r for r in
            (line.split("|") for line in proc.stdout.splitlines() if line.startswith("| suGRU") or line.startswith("| GRU"))}
    assert set(rows) == {("suGRU closed", "5"), ("suGRU closed", "200"), ("GRU", "5"), ("GRU", "200")}
    assert float(rows["suGRU closed", "200"][4]) == 1.0             # not one bit of decay
    assert float(rows["suGRU closed", "200"][5]) == 0.0             # every switch closed over the silence
    assert float(rows["GRU", "200"][4]) < 1e-10                     # the dense GRU's gradient has vanished
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_selective_copy_experiment_prints_its_table_and_writes_a_png(tmp_path):
    plot = tmp_path / "copy.png"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "selective_copy.py"), "--seq-len", "32", "--num-tokens", "2",
         "--vocab-size", "2", "--hidden-size", "8", "--epochs", "1", "--steps-per-epoch", "3", "--seeds", "0", "1",
         "--sparsity-lambda", "0.5", "--plot", str(plot)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line.split("|") for line in proc.stdout.splitlines() if line.startswith("| ") and "model" not in line]
    assert [r[1].strip() for r in rows] == ["suGRU event (default)", "GRU"], proc.stdout
    assert float(rows[1][3].split()[0]) == 1.0      # the GRU updates every neuron at every step
    assert "2 tokens of 2 values in 32 steps" in proc.stdout and "2 seeds" in proc.stdout
    assert "sparsity_lambda 0.5" in proc.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_selective_copy_experiment_rejects_a_negative_sparsity_lambda(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "selective_copy.py"), "--sparsity-lambda", "-1"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2 and "--sparsity-lambda" in proc.stderr and "must be >= 0" in proc.stderr


def test_selective_copy_experiment_rejects_more_tokens_than_steps(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / "selective_copy.py"), "--seq-len", "8",
                           "--num-tokens", "9"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2 and "--num-tokens" in proc.stderr


def test_sweep_front_experiment_runs_a_real_sweep_and_plots_its_front_beside_a_gru(tmp_path):
    plot, work = tmp_path / "front.png", tmp_path / "work"
    args = [sys.executable, str(ROOT / "experiments" / "sweep_front.py"), "--seeds", "0", "--workdir", str(work),
            "--plot", str(plot), *sum((["--set", o] for o in (
                "task.min_delay=10", "task.max_delay=10", "task.num_train=64", "task.num_val=32",
                "training.epochs=1", "training.steps_per_epoch=2", "training.hidden_size=8", "search.num_trials=2")), [])]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split("|") for line in proc.stdout.splitlines() if line.startswith("| 0 |")]
    assert any("suGRU front" in r[2] and "of 2 trials" in r[2] for r in rows), proc.stdout
    gru = [r for r in rows if "GRU (reference)" in r[2]]
    assert len(gru) == 1 and float(gru[0][4]) == 1.0
    assert (work / "seed0" / "mlflow.db").is_file() and (work / "seed0" / "optuna.db").is_file()
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert again.returncode == 2 and "--workdir" in again.stderr
