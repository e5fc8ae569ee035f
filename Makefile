# cropcredit: two commands for a fresh machine: `make demo` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= out/demo
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120
export PREFECT_HOME := $(CURDIR)/.prefect
export PREFECT_LOGGING_LEVEL := WARNING

.PHONY: install demo test lint typecheck unit bench eval browser postgresql clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU torch wheel first, so nothing pulls a CUDA build (see README, "Installing").
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/cropcredit demo --out $(OUT)

# Debian's Chromium + ChromeDriver for the browser tests (root on the CI machine; skipped elsewhere).
browser:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	      || echo "could not install chromium: browser tests will skip"; \
	    else echo "chromium not found: browser tests will skip (apt-get install chromium chromium-driver)"; fi; }

# Debian's PostgreSQL server for the ledger tests (tests/scoring/pg.py starts a throwaway one in
# a temp dir; root on the CI machine; skipped elsewhere).
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
	      || echo "could not install postgresql: PostgreSQL ledger tests will skip"; \
	    else echo "postgresql not found: PostgreSQL ledger tests will skip (apt-get install postgresql)"; fi; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) browser postgresql
	$(BIN)/pytest -q -p no:cacheprovider --timeout=600

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python -m bench

eval: $(STAMP)
	$(BIN)/python -m eval

clean:
	rm -rf out .prefect .pytest_cache .mypy_cache
