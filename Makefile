# The two commands a newcomer needs (see README):
#   make run    starts wcnotify (until `wcnotify up` exists: the protocol demo)
#   make test   sets everything up (venv, pinned Python and npm packages) and runs the whole suite
# Both create what they need on a fresh machine; nothing has to be installed by hand.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
JS_DIRS := tests/interop/js/current tests/interop/js/notify tests/interop/js/notify0146
JS_STAMPS := $(addsuffix /node_modules/.ci-stamp,$(JS_DIRS))

.PHONY: run test lint typecheck unit setup clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

%/node_modules/.ci-stamp: %/package-lock.json %/package.json
	cd $* && npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(STAMP) $(JS_STAMPS)

run: $(STAMP)
	$(BIN)/wcnotify demo

lint: $(STAMP)
	$(BIN)/ruff check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

test: setup lint typecheck
	$(BIN)/pytest -q -ra

clean:
	rm -rf $(VENV) $(addsuffix /node_modules,$(JS_DIRS))
