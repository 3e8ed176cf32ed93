# taskqueue: every target sets itself up; `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
# Without DATABASE_URL, commands use the embedded server in .taskqueue/ (kept across runs).
DB_ENV = if [ -z "$$DATABASE_URL" ]; then export DATABASE_URL="$$($(BIN)/taskqueue embedded start)"; fi

.DEFAULT_GOAL := help
.PHONY: help install test lint fmt migrate run-worker run run-api psql bench

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install taskqueue with its dev tools

test: $(STAMP) ## run the whole suite against a throwaway PostgreSQL
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP) ## format and auto-fix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: $(STAMP) ## apply migrations to DATABASE_URL (or the embedded server)
	@$(DB_ENV); $(BIN)/taskqueue migrate

run-worker: $(STAMP) ## run a worker (QUEUES, CONCURRENCY, HANDLERS env vars apply)
	@$(DB_ENV); $(BIN)/taskqueue migrate && exec $(BIN)/taskqueue worker

run: $(STAMP) ## everything on 127.0.0.1:8000: embedded PostgreSQL (unless DATABASE_URL), API, one worker
	@exec $(BIN)/taskqueue run

run-api: $(STAMP) ## serve only the REST API (HOST/PORT via TASKQUEUE_HOST/TASKQUEUE_PORT)
	@$(DB_ENV); $(BIN)/taskqueue migrate && exec $(BIN)/taskqueue api

psql: $(STAMP) ## psql on the database `make run` uses
	@exec $(BIN)/taskqueue psql

bench: $(STAMP) ## benchmark on DATABASE_URL (or an embedded PostgreSQL); BENCH_ARGS="--reps 1 --json"
	@$(BIN)/taskqueue bench $(BENCH_ARGS)
