# One command each: `make demo` (set-up + the whole pipeline on the demo data, report in
# exps/demo/demo/), `make test` (set-up + test suite), `make setup`, `make bench-ops`.
# DEMO_ARGS passes flags to tools/demo.py, e.g. `make demo DEMO_ARGS="--exp_name fresh"`.
# The virtual environment lives in .venv; override with `make test VENV=/path/to/venv`.
# TORCH is what gets installed when the venv has no torch: the CPU build here, e.g.
# `make setup TORCH="torch --index-url https://download.pytorch.org/whl/cu121"` on a GPU box.
PYTHON_SYS ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-all bench-ops clean-venv

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $(STAMP)

demo: setup
	$(PY) tools/demo.py $(DEMO_ARGS)

test: setup
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q -m ""

bench-ops: setup
	$(PY) scripts/benchmark_ops.py

clean-venv:
	rm -rf $(VENV)
