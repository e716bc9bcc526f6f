# ledgerlake: `make demo` and `make test` are all a fresh machine needs (Python 3.11+, Java 17+, network).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO_DATA ?= demo-data
export LEDGERLAKE_WAREHOUSE ?= $(CURDIR)/warehouse/lake

.PHONY: venv s3 demo test test-fast bench lint clean spark-conf airflow compose-env cluster

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt ledgerlake/setup_env.py $(wildcard ledgerlake/java/ledgerlake/spark/*.java)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	$(PY) -m ledgerlake.setup_env
	@touch $(STAMP)

# Hadoop's S3 connector and the AWS SDK bundle (~700 MB, downloaded once) for lakes and landing zones on S3.
S3_STAMP := $(VENV)/.s3-jars
s3: $(S3_STAMP)

$(S3_STAMP): $(STAMP)
	$(PY) -m ledgerlake.setup_env --s3
	@touch $(S3_STAMP)

demo: venv
	$(PY) -m ledgerlake.samples.demo --data $(DEMO_DATA)

# Two test processes (one Spark session each), a test file per process at a time, the longest files
# first (tests/conftest.py); the 15 slowest tests last.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15

test: venv s3
	$(PYTEST)

test-fast: venv s3
	$(PYTEST) -m "not slow"

bench: venv
	$(PY) bench/backfill.py

# Local Airflow 3 (airflow standalone, SQLite in .airflow/) with the DAGs, connection, pools and variables.
# Extra set-up flags: make airflow AIRFLOW_SETUP_ARGS="--landing cards=$$PWD/demo-data/cards --pool-slots cards=2"
airflow: venv
	$(PY) -m ledgerlake.orchestration.airflow_setup --standalone $(AIRFLOW_SETUP_ARGS)

# A Spark standalone master and worker on loopback (ledgerlake cluster status|stop).
cluster: venv
	$(VENV)/bin/ledgerlake cluster start

# docker-compose's secrets (none has a default): generated once into a git-ignored .env.
compose-env:
	$(PYTHON) docker/compose_env.py

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

clean:
	rm -rf $(DEMO_DATA) warehouse/lake .pytest_cache
