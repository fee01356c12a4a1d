# minik8s: the two commands that matter are `make up` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
WORKDIR ?= .work/cluster

.PHONY: up down local-up local-down images test unit integration e2e chaos lint bench proto \
        proto-check venv

# The 3-master cluster in containers (deploy/docker-compose.yml): etcd, apiserver,
# scheduler and controller-manager x3, two nodes with Docker engines of their own.
up: venv
	scripts/compose-up.sh

down:
	scripts/compose-down.sh

# The same cluster as processes on this machine; its kubelets share the host's engine.
local-up: venv
	scripts/install-deps.sh
	scripts/start-docker.sh
	scripts/build-images.sh
	scripts/up.sh $(WORKDIR)

local-down:
	@if [ -f $(WORKDIR)/cluster.json ]; then $(BIN)/minik8s local-up --down --workdir $(WORKDIR); fi

images:
	scripts/start-docker.sh && scripts/build-images.sh

test: venv images
	scripts/install-deps.sh --test
	$(BIN)/ruff check .
	$(BIN)/pytest -q

unit: venv
	$(BIN)/pytest -q tests/unit

integration: venv images
	$(BIN)/pytest -q tests/integration

# faults repeated under load (see docs/RELIABILITY.md); `make test` runs each once
chaos: venv images
	$(BIN)/pytest -q tests/chaos --chaos-full

e2e: venv images
	$(BIN)/pytest -q tests/e2e

lint: venv
	$(BIN)/ruff check .

bench: venv
	$(BIN)/python -m bench.api
	$(BIN)/python -m bench.scheduler
	$(BIN)/python -m bench.failover
	$(BIN)/python -m bench.controllers
	$(BIN)/python -m bench.pod_startup
	$(BIN)/python -m bench.proxy
	$(BIN)/python -m bench.dns

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
