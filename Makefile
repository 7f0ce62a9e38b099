# Developer entry points. `make demo` runs the platform, `make test` is what CI runs.
# With DATABASE_URL / CELERY_BROKER_URL set, they are used; without them, an embedded
# PostgreSQL and a filesystem broker under var/ (see README, Configuration).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: venv demo test lint fmt migrate worker stop bench clean

venv: $(STAMP)

# Re-installs only when pyproject.toml changes.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed; set PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(STAMP)
	$(BIN)/python -m cdp.demo

test: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

migrate: $(STAMP)
	$(BIN)/python manage.py migrate

worker: $(STAMP)
	$(BIN)/celery -A cdp worker --queues "$${CDP_QUEUE_PREFIX}default" --loglevel INFO

stop: $(STAMP)
	$(BIN)/python -m cdp.embedded stop

bench: $(STAMP)
	@set -e; found=0; for script in bench/*.py; do \
		case "$$(basename "$$script")" in _*) continue;; esac; \
		[ -f "$$script" ] || continue; found=1; \
		echo "== $$script"; $(BIN)/python "$$script"; \
	done; [ $$found = 1 ] || echo "no benchmarks in bench/ yet"

# Build output and caches only; var/ (the embedded database and development keys) is kept:
# `make stop && rm -rf var` starts over.
clean:
	rm -rf .pytest_cache .ruff_cache .hypothesis staticfiles build *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
