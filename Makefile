# Smart Maintenance: `make run` starts the app on its embedded defaults,
# `make test` runs the whole suite. Both set up everything they need.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PGLITE_DIR := tests/timescale

.PHONY: run quickstart test lint services browser test-python test-timescale clean

$(VENV)/.runtime: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.test: $(VENV)/.runtime tests/requirements.txt
	$(BIN)/python -m pip install --quiet -r tests/requirements.txt
	touch $@

$(PGLITE_DIR)/node_modules/.installed: $(PGLITE_DIR)/package.json $(PGLITE_DIR)/package-lock.json
	cd $(PGLITE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The quick start: SQLite, local-memory cache, local files, all under var/ (DJANGO_VAR_DIR).
# var/quickstart.env turns debug on for the manage.py commands the README shows, run after this; settings
# read it only without a DATABASE_URL, and var/ is in neither the image nor compose's .env.
QUICKSTART_VAR_DIR = $(or $(DJANGO_VAR_DIR),var)

quickstart: export DJANGO_DEBUG = true
quickstart: $(VENV)/.runtime
	mkdir -p "$(QUICKSTART_VAR_DIR)"
	printf '%s\n' '# Written by `make run`: the quick start runs in debug mode (read without DATABASE_URL only).' \
		'DJANGO_DEBUG=true' > "$(QUICKSTART_VAR_DIR)/quickstart.env"
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py ensure_admin
	$(BIN)/python manage.py seed_data --if-empty

# The web server, a Celery worker (every queue) and beat, started together and stopped together (Ctrl-C), on the
# embedded defaults: the broker is files under var/celery (no server to install; see settings.py).
RUN_ADDRESS ?= 127.0.0.1:8000

run: export DJANGO_DEBUG = true
run: quickstart
	@echo
	@echo "  Smart Maintenance admin: http://$(RUN_ADDRESS)/admin/ (scoring, alerts and mail run in the background)"
	@echo
	$(BIN)/python manage.py run_all $(RUN_ADDRESS)

services:
	.ci/services

# Debian's chromium for the admin console's browser test, installed when missing (as root).
browser:
	.ci/browser

# Both checks run even when the first fails.
lint: $(VENV)/.test
	@status=0; $(BIN)/ruff check . || status=1; $(BIN)/ruff format --check . || status=1; exit $$status

# PostgreSQL and Redis on this machine (see README, "Tests"). TEST_WORKERS processes (pytest-xdist) share the
# test files, each with its own test database, Redis database and var directory (tests/parallel.py); much of
# the suite waits on servers it starts (MLflow, Celery workers, gunicorn, Chromium), so two processes finish
# far sooner than one even on two cores. TEST_WORKERS=0 runs it in this one process.
TEST_WORKERS ?= 2

test-python: $(VENV)/.test services browser
	$(BIN)/python -m pytest -p tests.parallel --numprocesses=$(TEST_WORKERS) --dist=loadfile

# TimescaleDB: a PGlite build with the extension, started for this run only.
test-timescale: $(VENV)/.test $(PGLITE_DIR)/node_modules/.installed
	$(BIN)/python $(PGLITE_DIR)/server.py -- $(BIN)/python -m pytest $(PGLITE_DIR)

# Every suite runs, whatever an earlier one did; then the failed ones are named and make fails (exit 1), so
# one failing suite never hides another. A suite fails on any non-zero status, pytest's 5 (no tests
# collected) included. The suites run as sub-makes of this same makefile (firstword of MAKEFILE_LIST).
TEST_SUITES ?= lint test-python test-timescale

test:
	@failed=""; \
	for suite in $(TEST_SUITES); do \
		echo "=== make test: $$suite"; \
		$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) $$suite || failed="$$failed $$suite"; \
	done; \
	if [ -n "$$failed" ]; then \
		echo "=== make test: FAILED:$$failed (of: $(TEST_SUITES))" >&2; \
		exit 1; \
	fi; \
	echo "=== make test: all suites passed ($(TEST_SUITES))"

clean:
	rm -rf $(VENV) $(PGLITE_DIR)/node_modules static/vendor/node_modules .pytest_cache .ruff_cache
