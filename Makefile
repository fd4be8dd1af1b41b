# Set-up and entry points. `make demo` and `make test` each set up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch; a GPU user sets TORCH (see README) or installs torch first.
TORCH ?= torch==2.13.0
EXTRAS ?= test,baselines,export,video,parquet,serve

.PHONY: setup demo test lint clean

$(BIN)/memae: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

setup: $(BIN)/memae

demo: setup
	$(BIN)/memae demo --out demo-report

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache demo-report
