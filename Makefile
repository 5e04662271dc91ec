# Two commands do all the set-up: `make sweep` (the main job) and `make test`.
# Each makes or refreshes the virtual environment in .venv when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch is installed first and pinned exactly, so that the project's own install adds nothing
# bigger. On a machine without a GPU, point TORCH_INDEX_URL at a CPU-only wheel index if pip
# would otherwise fetch a CUDA build (e.g. TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu).
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX_URL ?=

.PHONY: install sweep train test bench bench-sparse clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL)) "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

sweep: $(STAMP)
	$(PY) -m orchestrator.sweep search_spaces/lra.yaml --profile local $(ARGS)

train: $(STAMP)
	$(PY) -m surnn.train --task delayed_recall --hidden-size 128 --epochs 4 --steps-per-epoch 60 \
		--sparsity-lambda 0.01 $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/layer_speed.py

bench-sparse: $(STAMP)
	$(PY) benchmarks/sparse_inference.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build surnn/sparse/_kernel*.so
