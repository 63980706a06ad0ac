# mdgen: `make help` lists every target.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_PIN := torch==2.13.0
# TORCH=skip keeps the torch already in $(VENV) (e.g. a CUDA build installed first, README "Install")
TORCH ?= pin
LOCK := requirements/ci.txt

.DEFAULT_GOAL := help

help: ## list targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "} {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

# The CI environment: torch, then every package at its version in $(LOCK) (mdgen[dev,md] resolved by
# `make lock`), then mdgen itself (editable, no dependency resolution); `pip check` fails on a lock that
# misses a requirement of pyproject.toml. pip compiles every module at install time
# (125 s on the 2-core machine): with PYTHONDONTWRITEBYTECODE set (as on the development machine) nothing compiled
# later is kept: with `pip --no-compile` a clean clone spent 774 s in pytest (other jobs beside it), 424 s without.
$(STAMP): pyproject.toml setup.py $(LOCK)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@if [ "$(TORCH)" = skip ]; then $(PY) -c 'import torch; print("TORCH=skip: keeping torch", torch.__version__)'; \
	else echo "$(PY) -m pip install --quiet $(TORCH_PIN)"; $(PY) -m pip install --quiet $(TORCH_PIN); fi
	$(PY) -m pip install --quiet -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m pip check
	touch $(STAMP)

install: $(STAMP) ## create .venv: torch (CPU wheel; TORCH=skip keeps yours), requirements/ci.txt, mdgen editable; a second run is a no-op

# Regenerate $(LOCK) after a dependency change in pyproject.toml (pip-tools, in its own venv under $(VENV)).
LOCK_TOOLS := $(VENV)/lock-tools
lock: ## re-resolve requirements/ci.txt (the CPU/CI lock) from pyproject.toml [dev,md] + requirements/ci.in
	test -x $(LOCK_TOOLS)/bin/pip-compile || { python3 -m venv $(LOCK_TOOLS) && $(LOCK_TOOLS)/bin/pip install --quiet pip-tools==7.6.2; }
	$(LOCK_TOOLS)/bin/pip-compile --quiet --extra dev --extra md --unsafe-package torch --strip-extras \
		--no-emit-index-url --no-emit-find-links -o $(LOCK) pyproject.toml requirements/ci.in

test: install ## fast suite (unit + component + integration, no slow/gpu markers), < 10 min on 2 cores
	$(PY) -m pytest -q -x --timeout=900 tests

test-full: install ## everything, including slow tests that read ../shared/data
	$(PY) -m pytest -q -m "" tests

# Mutation testing (mutmut, config in pyproject.toml [tool.mutmut]): mutate geometry, tokens, interpolant,
# tasks, sampling conditioning and the evaluation metrics; run each mutant against the fast unit tests that
# reach it. Working copy and results in mutants/ (gitignored); a re-run only tests new or changed mutants.
# Survivors: `$(VENV)/bin/mutmut results`; one mutant's diff: `$(VENV)/bin/mutmut show NAME`.
# Results, survivors explained, and the wall time: experiments/tests/README.md.
MUTATE_JOBS ?= 2
MUTATE_STAMP := $(VENV)/.mutation-installed
$(MUTATE_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev,mutation]'
	touch $(MUTATE_STAMP)

mutate: $(MUTATE_STAMP) ## mutation testing of the scoped modules (mutmut; results in mutants/, see experiments/tests/)
	nice -n 10 $(VENV)/bin/mutmut run --max-children $(MUTATE_JOBS)
	@echo "survived: $$($(VENV)/bin/mutmut results | grep -c ': survived$$') (list: $(VENV)/bin/mutmut results)"

lint: install ## ruff check + format check
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

# The demo: train on data/demo (real MD) for a fixed wall-clock budget, roll out the held-out test
# peptides from their first MD frame, evaluate against their MD. A re-run resumes or skips finished steps.
DEMO_DIR ?= outputs/demo
DEMO_CKPT := $(DEMO_DIR)/train/checkpoints/last.ckpt
# sampler=heun: the sampler of the recorded demo run (experiments/demo/README.md)
DEMO_SAMPLE_ARGS ?= num_rollouts=8 num_chunks=5 per_rollout_files=true batch_size=8 base_seed=0 sampler=heun

demo: install ## train, sample and evaluate on data/demo (2 CPU cores, < 25 min); report in outputs/demo/report.md
	@echo "== [1/3] training experiment=demo_forward on data/demo (fixed budget, see conf/experiment/demo_forward.yaml)"
	$(PY) -m mdgen.train experiment=demo_forward hydra.run.dir=$(DEMO_DIR)/train \
		$(if $(wildcard $(DEMO_CKPT)),ckpt_path=$(DEMO_CKPT),)
	@echo "== [2/3] forward rollouts of the test peptides (data/demo/splits/demo_test.csv)"
	$(PY) -m mdgen.sample ckpt_path=$(DEMO_CKPT) out_dir=$(DEMO_DIR)/samples \
		split=data/demo/splits/demo_test.csv cache_dir=.cache/demo_10ps $(DEMO_SAMPLE_ARGS)
	@echo "== [3/3] evaluation against the test peptides' MD"
	$(MAKE) --no-print-directory eval
	@echo "== demo done: report $(DEMO_DIR)/report.md, plots $(DEMO_DIR)/plots/, metrics $(DEMO_DIR)/metrics.json"

# make eval [SAMPLES=DIR] [REF=DIR] [TASK=forward|interp|upsample|inpaint|protein] [OUT=DIR]: any samples
# against any reference MD; the defaults are the demo's (plain `=`, not `?=`: a TASK or REF variable of the
# environment does not leak in; command-line values still override).
SAMPLES = $(DEMO_DIR)/samples
REF = data/demo/md
TASK = forward
OUT = $(patsubst %/,%,$(dir $(patsubst %/,%,$(SAMPLES))))

eval: install ## evaluate SAMPLES (outputs/demo/samples) against REF (data/demo/md) for TASK (forward); report in OUT (the samples' parent)
	@test -d $(SAMPLES) || { echo "no samples in $(SAMPLES): run 'make demo' first, or pass SAMPLES=DIR"; exit 2; }
	$(PY) -m mdgen.evaluate samples_dir=$(SAMPLES) reference_dir=$(REF) task=$(TASK) out_dir=$(OUT)
	@sed -n '/^| row /,/^$$/p' $(OUT)/report.md | head -8

# Quality of a forward checkpoint on held-out peptides with long MD references: roll out every peptide of
# QUALITY_SPLIT from its first MD frame and evaluate against its MD (torsion/TICA/MSM JS distances with MD
# rows, physical validity, relaxation times). Defaults: the shipped model on the six ../shared/data peptides.
QUALITY_CKPT ?= checkpoints/tetrapeptide_forward.ckpt
QUALITY_REF ?= ../shared/data/tetrapeptides
QUALITY_SPLIT ?= data/obc2_train/splits/test.csv
QUALITY_DIR ?= outputs/quality
QUALITY_SAMPLE_ARGS ?= num_rollouts=8 num_chunks=5 per_rollout_files=true batch_size=8 base_seed=0

quality-eval: install ## roll out QUALITY_CKPT on QUALITY_SPLIT peptides of QUALITY_REF and evaluate (outputs/quality/report.md)
	$(PY) -m mdgen.prepare sim_dir=$(QUALITY_REF) out_dir=.cache/quality_ref_10ps interval_ps=10 split=$(QUALITY_SPLIT)
	$(PY) -m mdgen.sample ckpt_path=$(QUALITY_CKPT) out_dir=$(QUALITY_DIR)/samples \
		split=$(QUALITY_SPLIT) cache_dir=.cache/quality_ref_10ps $(QUALITY_SAMPLE_ARGS)
	$(PY) -m mdgen.evaluate samples_dir=$(QUALITY_DIR)/samples reference_dir=$(QUALITY_REF) task=forward out_dir=$(QUALITY_DIR)
	@sed -n '/^| row /,/^$$/p' $(QUALITY_DIR)/report.md | head -8

clean: ## remove caches and outputs (keeps .venv)
	rm -rf outputs .pytest_cache .ruff_cache

.PHONY: help install lock test test-full mutate lint demo eval quality-eval clean

# The paper's evaluation with the published weights on whatever `python -m mdgen.download` fetched
# (README "Use the published models"; paths, test-set size and sample counts: scripts/paper_eval.sh).
paper-eval: install ## evaluate the published models (weights/) on the downloaded test sets; reports in outputs/paper/<task>/
	bash scripts/paper_eval.sh

.PHONY: paper-eval
