# The two commands for a fresh machine are `make demo` and `make test`.
# Both create .venv and install kappa into it first; Kafka's jars are fetched by
# `kappa kafka start` on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The test suite runs its own broker under var/test, apart from a development broker.
TEST_ENV := KAPPA_HOME=var/test KAPPA_KAFKA_PORT=29092 KAPPA_POSTGRES_PORT=29432

.PHONY: install browser postgres-server demo test lint typecheck unit chaos soak bench bench-peer clean kafka-start kafka-stop

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The dashboard's test drives Debian's Chromium through its chromedriver
# (tests/e2e/test_dashboard.py); installed here when missing, as root.
BROWSER_PACKAGES := chromium chromium-driver
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PACKAGES); \
	else \
		echo "Chromium is missing: install the Debian packages $(BROWSER_PACKAGES) (as root), then run make test again" >&2; \
		exit 1; \
	fi

# The sink's tests and `make demo` run a real PostgreSQL (app/postgres/local.py): Debian's
# server binaries, installed here when missing, as root (app/postgres/local.py runs them).
postgres-server:
	@if [ -n "$$KAPPA_POSTGRES_URL" ] || command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; \
	else \
		echo "PostgreSQL is missing: install the Debian package postgresql (as root), or set KAPPA_POSTGRES_URL, then run make again" >&2; \
		exit 1; \
	fi

demo: install postgres-server
	$(BIN)/kappa demo

test: install browser postgres-server lint typecheck
	$(TEST_ENV) $(BIN)/pytest; status=$$?; $(TEST_ENV) $(BIN)/kappa kafka stop >/dev/null; \
	$(TEST_ENV) $(BIN)/kappa postgres stop >/dev/null; exit $$status

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest tests/unit

# The long chaos suite: 10 seeded runs on a three-broker cluster, killing brokers too.
chaos: install
	KAPPA_CHAOS_LONG=1 KAPPA_CHAOS_RUNS=$${KAPPA_CHAOS_RUNS:-10} $(TEST_ENV) $(BIN)/pytest tests/chaos; \
	status=$$?; $(TEST_ENV) $(BIN)/kappa kafka stop >/dev/null; exit $$status

# The soak (not in make test): 10M keys, tumbling and hopping windows, through one
# partition's processor on real RocksDB in a 1 GB memory cgroup, exact on a sample of keys
# (bench/soak.py; needs root for the cgroup). Smaller: make soak SOAK_ARGS="--keys 300k".
SOAK_ARGS ?=
soak: install
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

# The benchmark's peer (Quix Streams) lives in its own venv, never in kappa's. bench.run
# also makes it on first use (bench/peer.py, with the same stamp).
BENCH_VENV := var/bench-venv
BENCH_ARGS ?= --repeat 1

$(BENCH_VENV)/.installed-stamp: bench/requirements-peer.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet -r bench/requirements-peer.txt
	touch $@

bench-peer: $(BENCH_VENV)/.installed-stamp

bench: install bench-peer
	$(BIN)/python -m bench.run $(BENCH_ARGS)

kafka-start: install
	$(BIN)/kappa kafka start

kafka-stop: install
	$(BIN)/kappa kafka stop

clean: kafka-stop
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
