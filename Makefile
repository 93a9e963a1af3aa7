# Two commands for a fresh machine with Python 3.10+: `make train` and `make test`.
# Each creates .venv on first use and installs what it needs into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: train test lint bench clean FORCE

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

# torch==2.13.0 is the CPU build this project's machines carry (a plain "torch" pulls a CUDA
# build there); elsewhere name the build you want, e.g.
# make test TORCH="torch --index-url https://download.pytorch.org/whl/cpu", or TORCH= to skip
# torch's rows. It goes in first, so the torch extra's range finds it satisfied.
TORCH ?= torch==2.13.0
# Everything the whole suite uses on a CPU machine: every extra but the GPU one (cupy).
TEST_EXTRAS := test,torch,jax,dask,onnx

$(VENV)/.installed-test: pyproject.toml Makefile | $(BIN)/python
	$(if $(TORCH),$(BIN)/python -m pip install --quiet $(TORCH))
	$(BIN)/python -m pip install --quiet -e ".[$(TEST_EXTRAS)]"
	touch $@

## train: train the book's spiral network on the default NumPy backend.
train: $(VENV)/.installed
	$(BIN)/python examples/spiral.py

## test: install every CPU extra, then lint, type-check and run the whole test suite.
test: $(VENV)/.installed-test lint
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The torch columns of the benchmark take the same TORCH as the tests (TORCH= times without).
# The marker holds the TORCH it was made with: another value, or a newer pyproject.toml,
# installs again.
$(VENV)/.installed-bench: FORCE | $(BIN)/python
	@if [ "$$(cat $@ 2>/dev/null)" != "torch: $(TORCH)" ] || [ pyproject.toml -nt $@ ]; then \
		$(BIN)/python -m pip install --quiet -e ".[bench]" $(TORCH) && \
		echo "torch: $(TORCH)" > $@; fi

## bench: one training step, nnx against the book's NumPy code, PyTorch and the matmul floor.
bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/step.py

FORCE:

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
