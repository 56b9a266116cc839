# make demo: the demo site on http://127.0.0.1:8000 (SQLite, in-memory layer, thread runner);
#            make demo PORT=8001 serves it on another port
# make test: the whole test suite (installs what it needs first)
# make demo-stack: the demo as a multi-process deployment (PostgreSQL, Redis, Celery,
#                  uvicorn :8000 + daphne :8001)
VENV ?= .venv
PORT ?= 8000
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

LTS_VENV ?= .venv-django52
LTS_PY := $(LTS_VENV)/bin/python
LTS_STAMP := $(LTS_VENV)/.installed

JS_STAMP := tests/js/node_modules/.installed

.PHONY: demo demo-stack test test-lts install lint format clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $$(scripts/find-python) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e . --group test --group lint
	@touch $(STAMP)

install: $(STAMP)

# The same package against Django 5.2 LTS (the oldest Django we support).
$(LTS_STAMP): pyproject.toml
	@test -x $(LTS_PY) || $$(scripts/find-python 3.11) -m venv $(LTS_VENV)
	$(LTS_PY) -m pip install --quiet --upgrade pip
	$(LTS_PY) -m pip install --quiet -e . --group test "django>=5.2,<6"
	@touch $(LTS_STAMP)

# axe-core for the accessibility browser tests, exactly as the lock file pins it.
$(JS_STAMP): tests/js/package-lock.json
	npm ci --prefix tests/js --no-audit --no-fund
	@touch $(JS_STAMP)

test-lts: $(LTS_STAMP)
	$(LTS_PY) -m pytest -m "not browser and not postgres" -q -p no:cacheprovider
	$(LTS_PY) -m pytest -m "postgres and not slow" --ds=tests.settings_pg -q -p no:cacheprovider

demo: install
	cd example && ../$(PY) manage.py migrate --noinput
	cd example && ../$(PY) manage.py demo_user --port $(PORT)
	cd example && ../$(PY) -m uvicorn demo_site.asgi:application --host 127.0.0.1 --port $(PORT)

demo-stack: install
	scripts/demo-stack

test: install $(JS_STAMP)
	@scripts/ensure-chromium
	$(PY) -m ruff check src tests example benchmarks
	$(PY) -m ruff format --check src tests example benchmarks
	$(PY) -m mypy
	$(VENV)/bin/lint-imports
	node --test tests/js/*.test.mjs
	$(PY) -m pytest -m "not browser and not postgres"
	$(PY) -m pytest -m postgres --ds=tests.settings_pg -p no:cacheprovider
	$(PY) -m pytest -m browser -p no:cacheprovider
	$(MAKE) --no-print-directory test-lts

lint: install
	$(PY) -m ruff check src tests example benchmarks
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

format: install
	$(PY) -m ruff check --fix src tests example benchmarks
	$(PY) -m ruff format src tests example benchmarks

clean:
	rm -rf $(VENV) $(LTS_VENV) tests/js/node_modules example/db.sqlite3 example/db.sqlite3-wal example/db.sqlite3-shm test-artifacts .pytest_cache .mypy_cache .ruff_cache
