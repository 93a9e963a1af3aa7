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

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

## train: train the book's spiral network on the default NumPy backend.
train: $(VENV)/.installed
	$(BIN)/python examples/spiral.py

## test: lint, type-check and run the whole test suite.
test: $(VENV)/.installed-test lint
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The torch columns of the benchmark. torch==2.13.0 is the CPU build this project's machines
# carry (a plain "torch" pulls a CUDA build there); elsewhere name the build you want, e.g.
# make bench TORCH="torch --index-url https://download.pytorch.org/whl/cpu", or TORCH= to
# time without torch.
TORCH ?= torch==2.13.0

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
