# The two commands for a fresh machine are `make demo` and `make test`.
# Both create .venv and install kappa into it first; Kafka's jars are fetched by
# `kappa kafka start` on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The test suite runs its own broker under var/test, apart from a development broker.
TEST_ENV := KAPPA_HOME=var/test KAPPA_KAFKA_PORT=29092

.PHONY: install demo test lint typecheck unit chaos bench clean kafka-start kafka-stop

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/kappa demo

test: install lint typecheck
	$(TEST_ENV) $(BIN)/pytest; status=$$?; $(TEST_ENV) $(BIN)/kappa kafka stop >/dev/null; exit $$status

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest tests/unit

# The long chaos suite: 10 seeded runs on a three-broker cluster, killing brokers too.
chaos: install
	KAPPA_CHAOS_LONG=1 KAPPA_CHAOS_RUNS=$${KAPPA_CHAOS_RUNS:-10} $(TEST_ENV) $(BIN)/pytest tests/chaos; \
	status=$$?; $(TEST_ENV) $(BIN)/kappa kafka stop >/dev/null; exit $$status

kafka-start: install
	$(BIN)/kappa kafka start

kafka-stop: install
	$(BIN)/kappa kafka stop

clean: kafka-stop
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
