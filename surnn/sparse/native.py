"""Loading the compiled step loop (`kernel.c`) through ctypes, building it if need be.

Where it comes from, first that works:
1. the library the package's install built beside this file (setup.py, `surnn.sparse._kernel`);
2. a build on first use with the C compiler (`$CC`, else `cc`), cached by the source's hash
   under `$SURNN_KERNEL_DIR` (default `~/.cache/surnn-sweep/kernels`), about a second;
3. none: `load()` returns None with the reason in `load_error()`, and the engine runs its
   PyTorch path (`surnn/sparse/eager.py`), which computes the same thing more slowly.

A library is used only if it was built from this very `kernel.c` (its hash is compiled in), so
an editable install whose source moved on rebuilds instead of running stale code.
"""
from __future__ import annotations

import ctypes
import hashlib
import importlib.machinery
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "kernel.c"
# -ffp-contract=off: no fused multiply-add where the dense layer rounds twice (the event gate's
# e + v h decides a switch, so it must round as torch does). The dot products use FMA explicitly.
CFLAGS = ["-O3", "-fPIC", "-shared", "-ffp-contract=off", "-fno-math-errno"]
# OpenMP for several threads per call; torch ships libgomp.so.1, which the kernel then shares.
# Without it the kernel builds all the same and runs on one thread.
OPENMP = ["-fopenmp"]

_state: dict = {}


class Layer(ctypes.Structure):
    _fields_ = [("cell", ctypes.c_int32), ("G", ctypes.c_int32), ("I", ctypes.c_int32),
                ("H", ctypes.c_int32), ("W", ctypes.c_void_p), ("bias", ctypes.c_void_p),
                ("perm", ctypes.c_void_p), ("U", ctypes.c_void_p), ("ub", ctypes.c_void_p),
                ("v", ctypes.c_void_p)]


class Call(ctypes.Structure):
    _fields_ = [("B", ctypes.c_int32), ("T", ctypes.c_int32), ("threads", ctypes.c_int32), ("x", ctypes.c_void_p),
                ("mask", ctypes.c_void_p), ("run_ptr", ctypes.c_void_p),
                ("run_start", ctypes.c_void_p), ("run_len", ctypes.c_void_p),
                ("drive", ctypes.c_void_p), ("h0", ctypes.c_void_p), ("c0", ctypes.c_void_p),
                ("h1", ctypes.c_void_p), ("c1", ctypes.c_void_p), ("y", ctypes.c_void_p),
                ("gates", ctypes.c_void_p), ("opened", ctypes.c_int64)]


def source_hash() -> str:
    """First 16 hex digits of the SHA-256 of `kernel.c` (what a usable library must carry)."""
    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]


def compile_flags() -> list[str]:
    """Compiler flags, with the source hash compiled in (setup.py uses the same)."""
    return CFLAGS + [f'-DSURNN_KERNEL_HASH="{source_hash()}"']


def load() -> ctypes.CDLL | None:
    """The kernel library, or None when it can be neither found nor built (see `load_error`)."""
    if "lib" not in _state:
        _state["lib"], _state["error"] = _find_or_build()
    return _state["lib"]


def load_error() -> str | None:
    """Why `load()` returned None; None when it did not."""
    load()
    return _state["error"]


def _find_or_build() -> tuple[ctypes.CDLL | None, str | None]:
    if os.environ.get("SURNN_SPARSE_KERNEL", "") == "off":
        return None, "SURNN_SPARSE_KERNEL=off"
    want = source_hash()
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        lib = _open(HERE / f"_kernel{suffix}", want)
        if lib is not None:
            return lib, None
    cache = Path(os.environ.get("SURNN_KERNEL_DIR", Path.home() / ".cache" / "surnn-sweep" / "kernels"))
    target = cache / f"surnn_sparse_{want}.so"
    lib = _open(target, want)
    if lib is not None:
        return lib, None
    try:
        _build(target)
    except (OSError, subprocess.CalledProcessError) as err:
        detail = getattr(err, "stderr", "") or str(err)
        return None, f"could not build surnn/sparse/kernel.c: {str(detail).strip()[:300]}"
    lib = _open(target, want)
    return (lib, None) if lib is not None else (None, f"built {target} but could not load it")


def _open(path: Path, want: str) -> ctypes.CDLL | None:
    if not path.is_file():
        return None
    try:
        lib = ctypes.CDLL(str(path))
    except OSError:
        return None
    lib.surnn_kernel_hash.restype = ctypes.c_char_p
    if lib.surnn_kernel_hash().decode() != want:
        return None
    lib.surnn_sparse_run.argtypes = [ctypes.POINTER(Layer), ctypes.POINTER(Call)]
    lib.surnn_sparse_run.restype = ctypes.c_int
    lib.surnn_kernel_simd.restype = ctypes.c_int
    lib.surnn_kernel_openmp.restype = ctypes.c_int
    return lib


def _build(target: Path) -> None:
    """Compile into a temporary file and rename it into place (safe when processes race)."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise OSError("no C compiler found (set CC, or install gcc)")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".so.tmp")
    os.close(fd)
    try:
        try:
            _compile(compiler, OPENMP, tmp)
        except subprocess.CalledProcessError:
            _compile(compiler, [], tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _compile(compiler: str, extra: list[str], out: str) -> None:
    subprocess.run([compiler, *compile_flags(), *extra, str(SOURCE), "-o", out, "-lm"],
                   check=True, capture_output=True, text=True, timeout=120)
