import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_prints_a_row_per_width_and_rate():
    # Tiny shapes: this checks that the script drives the real classes and prints its table, not speed.
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sparse_inference.py"), "--widths", "16", "24",
                           "--rates", "0.5", "0.2", "--length", "40", "--repeats", "1"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if re.match(r"\s+(16|24)\s+0\.\d+ \|", line)]
    assert len(rows) == 4
    for row in rows:
        rate = float(row.split()[1])
        assert 0.0 < rate < 1.0 and row.count("x") >= 5
    assert "backend: native" in proc.stdout
