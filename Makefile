# mdgen: `make help` lists every target.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_PIN := torch==2.13.0

.DEFAULT_GOAL := help

help: ## list targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "} {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv with torch (CPU wheel) and mdgen[dev]; a second run is a no-op

test: install ## fast suite (unit + component + integration, no slow/gpu markers), < 10 min on 2 cores
	$(PY) -m pytest -q -x --timeout=900 tests

test-full: install ## everything, including slow tests that read ../shared/data
	$(PY) -m pytest -q -m "" tests

lint: install ## ruff check + format check
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

demo: install ## train, sample and evaluate on data/demo (CPU, < 25 min); report in outputs/demo/report.md
	@echo "make demo: not implemented yet (issue 7)"; exit 1

eval: install ## evaluate the demo samples against their MD (outputs/demo)
	@echo "make eval: not implemented yet (issue 6)"; exit 1

clean: ## remove caches and outputs (keeps .venv)
	rm -rf outputs .pytest_cache .ruff_cache

.PHONY: help install test test-full lint demo eval clean
