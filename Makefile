# The two quick-start commands are `make book` and `make test`; each sets up .venv itself.
PY      := .venv/bin/python
STAMP   := .venv/.installed
export LADDER_DATA ?= $(abspath ../shared/data)
export OMP_NUM_THREADS ?= 2
export PYTHONHASHSEED = 0
# The kernel environment of the stored notebook outputs (CANONICAL_ENV in scripts/notebooks.py).
NB_ENV  := OMP_NUM_THREADS=2 PYTHONHASHSEED=0 CUDA_VISIBLE_DEVICES=
VENDORED := _vendor/versions.json
# Executed notebooks checked by nbval: the book's chapters and the experiments at quick parameters.
NOTEBOOKS = $(wildcard book/*.ipynb) $(wildcard experiments/*.ipynb)

.PHONY: book test lint unit nbval execute clean-notebooks check-notebooks vendor notebooks \
        browser-check

$(STAMP): pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install --quiet -e ".[dev,book]"
	touch $(STAMP)

## Build the book (HTML in _build/html) from the executed notebooks.
book: $(STAMP) vendor
	.venv/bin/jupyter-book build . -W --keep-going

## Run every check CI runs: lint, unit tests, notebook canonical form, nbval, the book build.
test: lint unit check-notebooks nbval book

lint: $(STAMP)
	.venv/bin/ruff check ladder tests benchmarks scripts

unit: $(STAMP)
	$(PY) -m pytest tests

## Re-execute every book/*.ipynb in place (fresh python3 kernel, cwd book/, NB_ENV, widget
## state stored), then clean them into canonical form. `make execute` is the same.
notebooks: $(STAMP)
	$(PY) scripts/notebooks.py execute $(NOTEBOOKS)

execute: notebooks

## Rewrite book/*.ipynb in canonical form without executing them.
clean-notebooks: $(STAMP)
	$(PY) scripts/notebooks.py clean $(NOTEBOOKS)

## Fail, listing the offenders, unless every notebook is canonical and fully executed.
check-notebooks: $(STAMP)
	$(PY) scripts/notebooks.py verify $(NOTEBOOKS)

## Re-run every chapter and compare it with its stored outputs (strict nbval).
nbval: $(STAMP)
	env $(NB_ENV) $(PY) -m pytest --nbval book/ experiments/ --nbval-current-env --nbval-cell-timeout 600 \
	    --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

## Copy the pinned MathJax and ipywidgets JS (package-lock.json) into _vendor/ for offline pages.
vendor: $(VENDORED)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund

$(VENDORED): node_modules/.package-lock.json scripts/vendor_assets.py
	python3 scripts/vendor_assets.py

## Open the built pages in headless Chromium with no network: screenshots in _build/browser-check,
## fails unless every equation is typeset and every widget rendered.
browser-check: book
	$(PY) scripts/browser_check.py --html _build/html --out _build/browser-check
