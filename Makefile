# The two commands a newcomer needs (see README):
#   make run    starts wcnotify: `wcnotify up`, relay + keys server + notify server, data in ./wcnotify-data
#   make test   sets everything up (venv, pinned Python and npm packages) and runs the whole suite
# Both create what they need on a fresh machine; nothing has to be installed by hand.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
JS_DIRS := tests/interop/js/current tests/interop/js/notify tests/interop/js/notify0146 tests/browser/js
JS_STAMPS := $(addsuffix /node_modules/.ci-stamp,$(JS_DIRS))

.PHONY: run test lint typecheck unit setup clean chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

%/node_modules/.ci-stamp: %/package-lock.json %/package.json
	cd $* && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian's Chromium for tests/browser (the web console, driven by playwright-core; Playwright's own browser
# download cannot reach its host from the test machines). Installed only when missing and we are root, else we
# say what to run. A failed install does not stop the suite: the browser test then fails under
# WCNOTIFY_REQUIRE_SERVICES=1, or skips saying why.
CHROMIUM := /usr/bin/chromium
chromium:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium for the browser tests (apt-get, about half a minute)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium >/dev/null; } || echo "WARNING: apt-get could not install chromium; tests/browser will not run"; \
	else \
	  echo "NOTE: $(CHROMIUM) is missing; for the browser tests run: sudo apt-get install --no-install-recommends chromium"; \
	fi

setup: $(STAMP) $(JS_STAMPS) chromium

run: $(STAMP)
	$(BIN)/wcnotify up

lint: $(STAMP)
	$(BIN)/ruff check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

test: setup lint typecheck
	$(BIN)/pytest -q -ra --durations=15

clean:
	rm -rf $(VENV) $(addsuffix /node_modules,$(JS_DIRS))
