# The two commands a newcomer needs: `make demo` and `make test`. Both set up .venv themselves.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CRM_HOME ?= $(CURDIR)/.crm
PEOPLE ?= 10000
BRANDS ?= 3
DAYS ?= 730
SEED ?= 7
AS_OF ?= $(shell date -u +%F)

LOCK := requirements.lock

.PHONY: demo test ui install install-test lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Exactly the committed lock: every package at its pinned version, nothing resolved afresh, then the
# project itself without dependencies; `pip check` fails if the lock misses something pyproject asks for.
$(VENV)/.installed: pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/python -m pip install --quiet --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $@

install install-test: $(VENV)/.installed

# A deliberate upgrade: a new venv with the newest releases pyproject admits, frozen into the lock, then
# the whole test suite on it. Commit requirements.lock when the tests pass.
lock:
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[test]'
	( echo "# Every dependency of crm_pipeline and its test extra, pinned. Refresh with: make lock"; \
	  $(BIN)/python -m pip freeze --all --exclude-editable ) > $(LOCK)
	touch $(VENV)/.installed
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

demo: $(VENV)/.installed
	mkdir -p $(CRM_HOME)/dagster && cp -u $(INSTANCE_TEMPLATE) $(CRM_HOME)/dagster/dagster.yaml
	rm -rf $(CRM_HOME)/demo $(CRM_HOME)/warehouse.duckdb $(CRM_HOME)/warehouse.duckdb.wal $(CRM_HOME)/data_docs
	$(BIN)/crm-pipeline generate --people $(PEOPLE) --brands $(BRANDS) --days $(DAYS) --seed $(SEED) --end-date $(AS_OF) --out $(CRM_HOME)/demo
	DAGSTER_HOME=$(CRM_HOME)/dagster $(BIN)/crm-pipeline run --landing $(CRM_HOME)/demo/landing --as-of $(AS_OF) --warehouse duckdb:///$(CRM_HOME)/warehouse.duckdb
	@echo
	@echo "Open the Dagster UI on the same data:  make ui   (then http://127.0.0.1:3000; Ctrl-C stops it)"

# The Dagster UI on the demo's data. The project's instance settings (run queue, retries, freshness) replace
# an older copy, never a newer edit; they live in deploy/, not beside workspace.yaml, because a dagster.yaml
# in the folder `dagster dev` starts from is a second, unused instance file (Dagster warns about it).
# `exec`: make's signals reach the supervisor itself, which stops `dagster dev` and every process it started
# within 10 s of Ctrl-C or SIGTERM (crm_pipeline/dev_server.py says why dagster dev alone does not).
UI_HOST ?= 127.0.0.1
UI_PORT ?= 3000
INSTANCE_TEMPLATE := deploy/dagster.yaml
ui: $(VENV)/.installed
	mkdir -p $(CRM_HOME)/dagster $(CRM_HOME)/demo/landing
	cp -u $(INSTANCE_TEMPLATE) $(CRM_HOME)/dagster/dagster.yaml
	exec env DAGSTER_HOME=$(CRM_HOME)/dagster CRM_HOME_DIR=$(CRM_HOME) CRM_LANDING_DIR=$(CRM_HOME)/demo/landing \
		CRM_WAREHOUSE_URL=duckdb:///$(CRM_HOME)/warehouse.duckdb \
		$(BIN)/python -m crm_pipeline.dev_server --host $(UI_HOST) --port $(UI_PORT)

# Three pytest-xdist workers on the 2-core machines we and CI run on: much of the suite waits on processes of its
# own (Dagster runs, PostgreSQL, Chromium, Spark's JVM), and a third worker keeps a core busy meanwhile (2026-12-07,
# one machine: 735 s with two workers, 673 s with three and six more tests, among them a Spark module of ~80 s).
# With three the cores are saturated (the whole machine busy 97-100% of the run), so the suite gets faster only by
# doing less: the test processes' DuckDB connections run one thread each, the Spark JVM the quick JIT tier and
# the test PostgreSQL server no JIT (a slower 2-core machine, 2026-12-07: 1,088-1,130 s before, 721 s after, 692
# tests each time; its single-core speed moved by about 16% between those runs).
# crm_pipeline_tests/conftest.py keeps each module (and the live, Spark ... packages) on one worker, so their
# fixtures are built once.
TEST_WORKERS ?= 3
test: $(VENV)/.installed
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

clean:
	rm -rf $(CRM_HOME) $(VENV)
