# Two commands matter: `make demo` (run the demo shop) and `make test` (lint + the suite).
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
PLUGIN_EXAMPLE := examples/encoder_plugin
export PATH := $(BIN):$(PATH)

.PHONY: install test test-fast lint demo services-stop clean

$(STAMP): pyproject.toml $(wildcard $(PLUGIN_EXAMPLE)/pyproject.toml) clients/python/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	if [ -f $(PLUGIN_EXAMPLE)/pyproject.toml ]; then \
		$(BIN)/python -m pip install --quiet -e $(PLUGIN_EXAMPLE); fi
	# The Python client (clients/python): its tests run against a live gunicorn.
	$(BIN)/python -m pip install --quiet -e clients/python
	touch $(STAMP)

install: $(STAMP)
	# Chromium and a CJK font for the browser tests, redis-server for the cluster tests
	# (Debian packages; idempotent).
	bash scripts/install_browser.sh && bash scripts/install_redis.sh

lint: install
	$(BIN)/ruff check .
	# The layers of docs/DESIGN: imports flow down, never up (contracts in pyproject.toml).
	$(BIN)/lint-imports

test: lint
	# pytest exits 5 when it collects nothing: say so instead of a bare "Error 5".
	$(BIN)/pytest || { status=$$?; \
		if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; fi; exit $$status; }

# The quick loop while developing: no worker processes, browser, fuzzing or model weights.
test-fast: install
	$(BIN)/pytest -m "not worker and not browser and not fuzz and not slow"

demo: install
	bash scripts/demo.sh

services-stop: install
	DEBUG=1 $(BIN)/python manage.py services stop

clean:
	rm -rf $(VENV)
