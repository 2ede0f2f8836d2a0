# The suite's commands. `make demo` and `make test` work on a fresh machine: they install what
# they need (a Python virtual environment, the Kafka broker's jars, Debian's PostgreSQL).
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
BIN := $(VENV)/bin
SCRIPTS := deploy/scripts
STATE_DIR ?= .local

.PHONY: help setup up down clean status lint format docs typecheck test test-faults test-unit demo simulate bench load check-monitoring

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: ## install everything (idempotent): Python packages, Kafka jars, PostgreSQL
	@$(SCRIPTS)/setup-python.sh
	@$(SCRIPTS)/kafka.sh install
	@$(SCRIPTS)/postgres.sh install
	@$(SCRIPTS)/setup-prometheus.sh

up: setup ## start Kafka, PostgreSQL and the services in the background; returns once ready
	@$(SCRIPTS)/stack.sh up

down: ## stop everything, keeping its data
	@$(SCRIPTS)/stack.sh down

status: ## what is running
	@$(SCRIPTS)/stack.sh status

clean: down ## stop everything and wipe the local data (STATE_DIR, default .local; the jar cache stays)
	rm -rf "$(STATE_DIR)/kafka/data" "$(STATE_DIR)/kafka/cluster.id" "$(STATE_DIR)/postgres" \
		"$(STATE_DIR)/logs" "$(STATE_DIR)/run"

lint: ## ruff check and format check, and the generated contract documents are current
	@$(SCRIPTS)/setup-python.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m shared.contract_docs --check

docs: ## regenerate the AsyncAPI document and JSON Schemas under docs/
	$(BIN)/python -m shared.contract_docs

format: ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: ## mypy, strict
	@$(SCRIPTS)/setup-python.sh
	$(BIN)/mypy

test: setup lint typecheck check-monitoring ## install, lint, typecheck and run every test against real Kafka and PostgreSQL
	$(BIN)/pytest $(PYTEST_ARGS)

check-monitoring: ## promtool: both Prometheus configs, the rules and their unit tests
	@$(SCRIPTS)/setup-prometheus.sh
	promtool check config deploy/prometheus/prometheus.yml
	promtool check config deploy/prometheus/prometheus.compose.yml
	promtool check rules deploy/prometheus/rules/*.yml
	promtool test rules deploy/prometheus/tests/*.yml

test-faults: setup ## the fault suite at full size: kill -9, broker and database restarts during a replay (FAULT_EVENTS, FAULT_CHUNKS)
	FAULT_EVENTS=$${FAULT_EVENTS:-100000} FAULT_CHUNKS=$${FAULT_CHUNKS:-12} $(BIN)/pytest tests/faults -s $(PYTEST_ARGS)

test-unit: ## the tests that need no server
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

demo: setup ## replay the order history through a fresh local stack, live (wipes STATE_DIR's data)
	@echo "make demo starts from an empty local stack: the data under $(STATE_DIR) is wiped first"
	@$(MAKE) --no-print-directory clean up
	@$(BIN)/python -m simulation.demo $(DEMO_ARGS)

simulate: setup ## compare the replenishment policies on the order history (closed loop, no servers)
	@$(BIN)/python -m simulation $(SIMULATE_ARGS)

bench: up ## the benchmark suite: one table, JSON under bench/results/
	@$(BIN)/python -m bench $(BENCH_ARGS)

load: up ## a steady 1,000 events/s for 10 minutes: latency and RSS over time (LOAD_ARGS)
	@$(BIN)/python -m bench.load $(LOAD_ARGS)
