"""Builds the sparse inference kernel (plain C, loaded with ctypes) with the package.

Everything else about the package is in pyproject.toml. The extension is optional: without a C
compiler the install still succeeds, and surnn.sparse builds the kernel on first use or runs
its PyTorch path (surnn/sparse/native.py says which and why).
"""
import importlib.util
from pathlib import Path

from setuptools import Extension, setup

# native.py imports only the standard library: load it alone for the source hash and the flags.
_spec = importlib.util.spec_from_file_location("_surnn_native", Path(__file__).parent / "surnn/sparse/native.py")
native = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(native)

kernel = Extension(
    "surnn.sparse._kernel",
    sources=["surnn/sparse/kernel.c"],
    extra_compile_args=[f for f in native.CFLAGS if f not in ("-fPIC", "-shared")] + native.OPENMP,
    extra_link_args=native.OPENMP,
    define_macros=[("SURNN_KERNEL_HASH", f'"{native.source_hash()}"')],
    libraries=["m"],
    optional=True,
)

setup(ext_modules=[kernel])
