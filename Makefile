# Beacon — the two commands a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: system-deps install up down status migrate demo test test-faults test-unit test-containers bench lint schemas clean image

# The system packages both commands need (Python venv, Java 17, Maven, PostgreSQL server, Chromium for the
# portal's browser test): apt-get installs whichever are missing, through sudo when you are not root.
# `make install` (so up, demo, test, lint, …) runs it first; silent, a quarter of a second, when nothing is missing.
system-deps:
	@bash deploy/system-deps.sh

# The version of uv that installs everything, read from the one place that pins it (pyproject.toml's dev group).
UV_VERSION := $(shell sed -n 's/.*"uv==\([0-9.]*\)".*/\1/p' pyproject.toml)
MEMBERS    := $(wildcard */pyproject.toml services/*/pyproject.toml)

# Re-install when a member's dependencies or the lock change. `uv sync --locked` installs exactly uv.lock
# (every workspace member editable, and the dev group) and fails if the lock is stale: run `uv lock`.
$(STAMP): pyproject.toml uv.lock $(MEMBERS) | system-deps
	@test -x $(PY) || python3 -m venv $(VENV)
	@test -x $(VENV)/bin/uv || $(PY) -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)
	UV_PYTHON_DOWNLOADS=never $(VENV)/bin/uv sync --quiet --locked --all-packages --compile-bytecode --python $(PY)
	@touch $(STAMP)

# Bytecode made at install, for the dependencies (--compile-bytecode above) and for the members' own sources
# (here, incremental: a tenth of a second when nothing changed). Where PYTHONDONTWRITEBYTECODE is set, as on
# this project's CI machines, nothing else writes it, and every `beacon` command and service would compile
# its imports from source on each start: `beacon submit` took 0.67 s instead of 0.31 s.
install: $(STAMP)
	@$(PY) -m compileall -q -j 0 $(dir $(MEMBERS)) > /dev/null

# BROKERS=3 starts a three-node KRaft cluster on loopback (replication factor 3, min.insync.replicas 2).
# TOPOLOGY=regions: a central cluster and one per region, linked by MirrorMaker 2 (README, Regions).
BROKERS ?= 1
TOPOLOGY ?= single
up: install
	@BEACON_KAFKA_BROKERS=$(BROKERS) BEACON_TOPOLOGY=$(TOPOLOGY) $(PY) -m beacon.deploy.local up

down:
	@test -x $(PY) && $(PY) -m beacon.deploy.local down || echo "nothing installed, nothing to stop"

status: install
	@$(PY) -m beacon.deploy.local status

migrate: up
	@$(VENV)/bin/beacon migrate

demo: up
	@$(VENV)/bin/beacon demo

# The whole suite: unit tests and the pipeline on a real Kafka broker and PostgreSQL (started if needed).
test: up
	$(PY) -m pytest

# The slow fault tests alone, each broker-loss case repeated (BEACON_FAULT_REPEAT, 5 here, 1 in `make test`).
test-faults: up
	BEACON_FAULT_REPEAT=$${BEACON_FAULT_REPEAT:-5} $(PY) -m pytest tests/faults -m faults

# The images as real containers (Kafka, PostgreSQL, the services), through testcontainers: needs Docker.
test-containers: install image
	$(PY) -m pytest tests/containers -m containers

test-unit: install
	$(PY) -m pytest tests/unit

# Benchmarks (not part of `make test`; a smoke run of the harness is). BENCH_ARGS=--events 1000000 for more.
bench: up
	$(PY) -m bench.run $(BENCH_ARGS)

# Container images: beacon (every service), and Kafka, PostgreSQL and MirrorMaker to run beside it (README, Deploy).
image:
	@bash deploy/images/docker-daemon.sh
	@bash deploy/images/build.sh

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

schemas: install
	$(PY) -m tools.contracts

clean: down
	@test -x $(PY) && $(PY) -m beacon.deploy.local clean || true
	rm -rf .beacon
