"""The GPU check: CUDA tests, then suGRU speed against cuDNN's GRU at LRA shapes, then one
ListOps training epoch through surnn.train. One command, a few minutes on an H100/H200:

    python benchmarks/gpu_check.py                    # on a machine with a CUDA GPU
    python benchmarks/gpu_check.py --device cpu --tiny   # the same code paths on tiny shapes, on CPU

The table: forward + backward time of torch.nn.GRU (cuDNN), of a stack of SuRNN layers on the
PyTorch scan (SURNN_GRU_KERNEL=torch) and on the fused Triton kernels (SURNN_GRU_KERNEL=triton),
at batch 50, length 2000, width 256, 1 and 4 layers, under bfloat16 autocast and in float32;
tokens/s, the ratio to cuDNN, peak memory, and how far the fused output is from the PyTorch
scan's on the same weights. On CPU the fused kernels run in Triton's interpreter, so --tiny.
Without a CUDA GPU (and without --device cpu) it says so and exits 0. Exit 1 if a test failed.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from surnn import SuRNN  # noqa: E402
from surnn.cell import GRU_KERNEL_ENV  # noqa: E402

SHAPES = {
    "full": dict(batch=50, length=2000, width=256, layers=(1, 4), repeats=3,
                 listops=dict(num_train=2000, batch_size=50, num_layers=4, hidden_size=256)),
    "tiny": dict(batch=4, length=16, width=32, layers=(1, 2), repeats=1,
                 listops=dict(num_train=16, batch_size=4, num_layers=1, hidden_size=16,
                              min_length=10, max_length=60, max_depth=3)),
}
TESTS = ["tests/surnn/test_triton_scan.py", "tests/surnn/test_amp.py"]


def run_tests(timeout_s: int) -> bool:
    """The kernel tests (CUDA ones run when a GPU is there) in a subprocess; True if they pass."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *TESTS]
    print("$ " + " ".join(cmd[2:]), flush=True)
    try:
        return subprocess.run(cmd, cwd=ROOT, env=env, timeout=timeout_s).returncode == 0
    except subprocess.TimeoutExpired:
        print(f"tests: still running after {timeout_s} s, stopped", flush=True)
        return False


@contextlib.contextmanager
def gru_kernel(name: str | None):
    """SURNN_GRU_KERNEL set to `name` (None: left as it is) for the block."""
    old = os.environ.get(GRU_KERNEL_ENV)
    if name is not None:
        os.environ[GRU_KERNEL_ENV] = name
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(GRU_KERNEL_ENV, None)
        else:
            os.environ[GRU_KERNEL_ENV] = old


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def fwd_bwd(forward, params, x: torch.Tensor, amp: torch.dtype | None) -> tuple[float, torch.Tensor]:
    """Seconds of one forward and backward pass (loss = sum of outputs), and the output."""
    for p in params:
        p.grad = None
    _sync(x.device)
    start = time.perf_counter()
    with torch.autocast(x.device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
        y = forward(x)
    y.float().sum().backward()
    _sync(x.device)
    return time.perf_counter() - start, y.detach()


def measure(forward, params, x, amp, repeats: int) -> dict:
    """Median time over `repeats` after one warm-up (which also compiles), and peak memory."""
    fwd_bwd(forward, params, x, amp)
    if x.is_cuda:
        torch.cuda.reset_peak_memory_stats()
    times, y = [], None
    for _ in range(repeats):
        t, y = fwd_bwd(forward, params, x, amp)
        times.append(t)
    peak = torch.cuda.max_memory_allocated() / 2 ** 20 if x.is_cuda else None
    return {"s": statistics.median(times), "peak_mib": peak, "y": y}


def _stack(layers):
    def forward(x):
        for layer in layers:
            x = layer(x)[0]
        return x
    return forward


def bench_rows(shape: dict, device: torch.device, gates: list[str]) -> list[dict]:
    """One row per (layers, precision, path): cuDNN once, then each gate on both scans."""
    B, T, W = shape["batch"], shape["length"], shape["width"]
    rows = []
    for L in shape["layers"]:
        torch.manual_seed(0)
        x = torch.randn(B, T, W, device=device)
        gru = torch.nn.GRU(W, W, num_layers=L, batch_first=True).to(device)
        for amp in (torch.bfloat16, None):
            common = dict(layers=L, precision="bf16 autocast" if amp else "float32")
            base = _row(rows, {**common, "gate": "-", "path": "nn.GRU (cuDNN)" if device.type == "cuda" else "nn.GRU"},
                        lambda: measure(lambda v: gru(v)[0], list(gru.parameters()), x, amp, shape["repeats"]), None)
            for gate in gates:
                stack = [SuRNN(W, W, gate=gate).to(device) for _ in range(L)]
                params = [p for layer in stack for p in layer.parameters()]
                for path, kernel in (("SuRNN PyTorch scan", "torch"), ("SuRNN fused Triton", "triton")):
                    with gru_kernel(kernel):
                        ref = _row(rows, {**common, "gate": gate, "path": path},
                                   lambda: measure(_stack(stack), params, x, amp, shape["repeats"]), base,
                                   ref if kernel == "triton" else None)
                print(_format(rows[-2]) + "\n" + _format(rows[-1]), flush=True)
    return rows


def _row(rows: list, row: dict, run, base: dict | None, ref: dict | None = None) -> dict | None:
    """Run one measurement into `row` (an error is recorded, not raised); returns its result."""
    try:
        result = run()
    except Exception as exc:  # noqa: BLE001 - a failed path is a row of the table, not the end of the check
        rows.append({**row, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:90]}"})
        return None
    tokens = result["y"].shape[0] * result["y"].shape[1]
    row.update(ms=1e3 * result["s"], tokens_per_s=tokens / result["s"], peak_mib=result["peak_mib"])
    if base is not None:
        row["vs_cudnn"] = base["s"] / result["s"]                         # throughput ratio
    if ref is not None:
        row["max_diff"] = (result["y"].float() - ref["y"].float()).abs().max().item()
    rows.append(row)
    if base is None:
        print(_format(row), flush=True)
    return result


HEADER = (f"{'layers':>6}  {'precision':<13}  {'gate':<8}  {'path':<19}  {'fwd+bwd ms':>10}  {'tokens/s':>10}  "
          f"{'vs cuDNN':>8}  {'peak MiB':>8}  {'max|fused-torch|':>16}")


def _format(row: dict) -> str:
    head = f"{row['layers']:>6}  {row['precision']:<13}  {row['gate']:<8}  {row['path']:<19}"
    if "error" in row:
        return f"{head}  failed: {row['error']}"
    ratio = f"{row['vs_cudnn']:.2f}x" if "vs_cudnn" in row else "1.00x"
    peak = f"{row['peak_mib']:.0f}" if row["peak_mib"] is not None else "-"
    diff = f"{row['max_diff']:.1e}" if "max_diff" in row else "-"
    return (f"{head}  {row['ms']:>10.1f}  {row['tokens_per_s']:>10.0f}  {ratio:>8}  {peak:>8}  {diff:>16}")


def listops_epoch(settings: dict, device: torch.device, kernel: str | None) -> str:
    """One short ListOps training epoch through surnn.train; its throughput as one line."""
    from surnn.train import train

    options = {k: settings[k] for k in ("num_train", "min_length", "max_length", "max_depth") if k in settings}
    options.update(num_val=settings["batch_size"], num_test=settings["batch_size"])
    steps = settings["num_train"] // settings["batch_size"]
    with tempfile.TemporaryDirectory() as cache, gru_kernel(kernel):
        config = {"task": "listops", "task_options": options, "hidden_size": settings["hidden_size"],
                  "num_layers": settings["num_layers"], "batch_size": settings["batch_size"], "epochs": 1,
                  "steps_per_epoch": steps, "max_eval_samples": settings["batch_size"],
                  "device": str(device), "precision": "auto", "cache_dir": cache}
        from surnn.data import load_task
        load_task("listops", options, cache_dir=cache)                    # data made before the clock starts
        start = time.perf_counter()
        result = train(config)
        elapsed = time.perf_counter() - start
    return (f"ListOps, {settings['num_layers']} layers x {settings['hidden_size']}, {steps} steps of "
            f"batch {settings['batch_size']}, kernel {kernel or 'auto'}: {result['status']}, "
            f"{result['tokens_per_s']:.0f} tokens/s in training, {elapsed:.1f} s with the evaluation, "
            f"train_loss {result['train_loss']:.3f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--tiny", action="store_true", help="tiny shapes (what --device cpu can run)")
    p.add_argument("--gates", default="rhythmic,event", help="comma-separated gates to time (default: %(default)s)")
    p.add_argument("--skip-tests", action="store_true", help="only the table and the ListOps epoch")
    p.add_argument("--tests-timeout", type=int, default=300, help="seconds for the tests (default: %(default)s)")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here (torch.cuda.is_available() is False); nothing to check. "
              "For the same code paths on CPU: --device cpu --tiny")
        return 0
    if args.device == "cpu" and not args.tiny:
        print("gpu_check: --device cpu runs the Triton kernels in the interpreter: add --tiny", file=sys.stderr)
        return 2
    device, shape = torch.device(args.device), SHAPES["tiny" if args.tiny else "full"]
    start = time.perf_counter()
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"gpu_check on {name}, torch {torch.__version__}, shapes {'tiny' if args.tiny else 'full'}", flush=True)
    passed = True if args.skip_tests else run_tests(args.tests_timeout)
    print(f"tests: {'passed' if passed else 'FAILED'} ({time.perf_counter() - start:.0f} s)\n", flush=True)

    print(f"batch {shape['batch']}, length {shape['length']}, width {shape['width']}; vs cuDNN = its time / "
          f"this time (higher is faster)\n{HEADER}", flush=True)
    rows = bench_rows(shape, device, [g.strip() for g in args.gates.split(",") if g.strip()])
    print(f"\n{HEADER}\n" + "\n".join(_format(r) for r in rows), flush=True)
    print(f"({time.perf_counter() - start:.0f} s so far)\n", flush=True)
    kernels = ["triton", "torch"] if device.type == "cuda" else ["triton"]
    for kernel in kernels:
        try:
            print(listops_epoch(shape["listops"], device, kernel), flush=True)
        except Exception as exc:  # noqa: BLE001 - reported, and the check goes on
            print(f"ListOps epoch, kernel {kernel}: failed: {type(exc).__name__}: {exc}", flush=True)
            passed = False
    print(f"\ngpu_check done in {time.perf_counter() - start:.0f} s; tests {'passed' if passed else 'FAILED'}")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
