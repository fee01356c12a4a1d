# minik8s: the two commands that matter are `make up` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
WORKDIR ?= .work/cluster

.PHONY: up down images test unit integration lint bench proto proto-check venv

up: venv
	scripts/install-deps.sh
	scripts/start-docker.sh
	scripts/build-images.sh
	scripts/up.sh $(WORKDIR)

images:
	scripts/start-docker.sh && scripts/build-images.sh

down:
	@if [ -f $(WORKDIR)/cluster.json ]; then $(BIN)/minik8s local-up --down --workdir $(WORKDIR); fi

test: venv images
	$(BIN)/ruff check .
	$(BIN)/pytest -q

unit: venv
	$(BIN)/pytest -q tests/unit

integration: venv images
	$(BIN)/pytest -q tests/integration

lint: venv
	$(BIN)/ruff check .

bench: venv
	$(BIN)/python -m bench.api
	$(BIN)/python -m bench.scheduler
	$(BIN)/python -m bench.failover
	$(BIN)/python -m bench.controllers
	$(BIN)/python -m bench.pod_startup

proto: venv
	$(BIN)/python proto/generate.py

proto-check: venv
	$(BIN)/python proto/generate.py --check

venv: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@
