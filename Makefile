# migctl: `make demo` and `make test` set up their own virtual environment from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS := server,bench,fleet,dev

.PHONY: demo demo-fleet test lint typecheck imports unit venv clean bench hardware

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m migctl.demo
	@echo "And a simulated 4-host fleet on Dask: make demo-fleet"

demo-fleet: $(STAMP)
	$(BIN)/migctl fleet demo

lint: $(STAMP)
	$(BIN)/ruff check src tests tools bench
	$(BIN)/ruff format --check src tests tools bench

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest

test: lint typecheck imports unit

# Benchmarks take the large data sets as a path: make bench DATA=../shared/data
DATA ?= ../shared/data
bench: $(STAMP)
	$(BIN)/python -m bench.cli_latency --out bench/results
	$(BIN)/python -m bench.parvagpu --data $(DATA)/parvagpu --out bench/results
	$(BIN)/python -m bench.openb --data $(DATA)/alibaba-openb --out bench/results
	$(BIN)/python -m bench.planner_scale --data $(DATA) --out bench/results
	$(BIN)/python -m bench.fleet_bench --data $(DATA)/alibaba-openb --out bench/results

hardware: $(STAMP)
	PYTHON=$(BIN)/python tools/real_gpu_checks.sh docs/hardware

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
