# Two commands on a fresh machine with Python 3.10+:  make demo  /  make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-quick lint docs gallery bench bench-quick wheel-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@ $(VENV)/.installed

## make demo: trace the built-in synthetic movie into demo_output/
demo: $(VENV)/.installed
	$(BIN)/flowtrace demo demo_output

## make test: the whole suite (parity with ../shared/reference where present)
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

## make test-quick: the suite without the tests marked slow (processes, clusters, signals)
test-quick: $(VENV)/.installed-test
	$(BIN)/python -m pytest -m "not slow"

## make lint: ruff and the import layers (both in pyproject.toml); CI fails on any finding
lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/lint-imports

$(VENV)/.installed-docs: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	@touch $@

## make docs: the docs site into site/ (mkdocs build --strict: any warning fails)
docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

## make gallery: redraw docs/gallery/ and docs/gallery.md (the demo, the real recordings)
gallery: $(VENV)/.installed
	$(BIN)/python docs/gallery.py

## make bench: kernel and end-to-end benchmarks; tables on stdout, JSON in bench/results/
bench: $(VENV)/.installed-test
	$(BIN)/python bench/run_all.py

bench-quick: $(VENV)/.installed-test
	$(BIN)/python bench/run_all.py --quick

## make wheel-check: every module imports from the built wheel, outside the source tree
wheel-check: $(VENV)/.installed-test
	bash .ci/wheel_check.sh

clean:
	rm -rf $(VENV) build dist *.egg-info demo_output bench/results site
