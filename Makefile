# The two quick-start commands are `make book` and `make test`; each sets up .venv itself.
# `make <target> CONDA=1` uses the active conda environment (environment.yml) instead of .venv.
ifdef CONDA
PY      := python
BIN     := $(dir $(shell which python))
STAMP   :=
else
PY      := .venv/bin/python
BIN     := .venv/bin/
STAMP   := .venv/.installed
endif
export LADDER_DATA ?= $(abspath ../shared/data)
export OMP_NUM_THREADS ?= 2
export PYTHONHASHSEED = 0
# The kernel environment of the stored notebook outputs (CANONICAL_ENV in scripts/notebooks.py):
# 2 threads, no GPU, and PyTorch, oneDNN and MKL kernels limited to AVX2, the instruction set of
# readers' laptops, so an AVX-512 or AMX machine runs the same kernels as an AVX2 one.
NB_ENV  := OMP_NUM_THREADS=2 PYTHONHASHSEED=0 CUDA_VISIBLE_DEVICES= \
           ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
# A second instruction set for nbval-default: no SIMD in PyTorch's own kernels, SSE4 in oneDNN
# and MKL. Its float rounding differs from AVX2's, so it proves that what nbval compares does not
# depend on the CPU (CONTRIBUTING.md, "Notebooks").
ISA_DEFAULT := ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 MKL_ENABLE_INSTRUCTIONS=SSE4_2
NBVAL   := $(PY) -m pytest --nbval --nbval-current-env --nbval-cell-timeout 600 \
           --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider
VENDORED := _vendor/versions.json
# Executed notebooks checked by nbval: the book's chapters and the experiments at quick parameters.
NOTEBOOKS = $(wildcard book/*.ipynb) $(wildcard experiments/*.ipynb)

.PHONY: book test lint unit nbval nbval-default execute clean-notebooks check-notebooks vendor \
        notebooks browser-check claims

ifndef CONDA
$(STAMP): pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install --quiet -e ".[dev,book]"
	touch $(STAMP)
endif

## Build the book (HTML in _build/html) from the executed notebooks, then the checks of the built
## pages that need no browser (tables left as pipe text, unresolved citations, wide equations).
book: $(STAMP) vendor
	$(BIN)jupyter-book build . -W --keep-going
	$(PY) scripts/browser_check.py --static --html _build/html

## Run every check CI runs: lint, unit tests, notebook canonical form, nbval, the book build.
## (nbval-default, the same notebooks on a second instruction set, takes ~25 min more on a
## 2-core CPU and is run by hand; CONTRIBUTING.md.)
test: lint unit check-notebooks nbval book

lint: $(STAMP)
	$(BIN)ruff check ladder tests benchmarks scripts

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

## Re-run every chapter and compare it with its stored outputs (strict nbval), kernels on AVX2.
nbval: $(STAMP)
	env $(NB_ENV) $(NBVAL) $(NOTEBOOKS)

## The same on a second instruction set (ISA_DEFAULT): the outputs must not depend on the CPU.
nbval-default: $(STAMP)
	env $(NB_ENV) $(ISA_DEFAULT) $(NBVAL) $(NOTEBOOKS)

## Every chapter's claims (ladder.notebook.check) over training seeds 0-4, kernels on AVX2:
## a table of margins per claim and seed (resumable; runs in tens of minutes).
claims: $(STAMP)
	$(PY) scripts/claims_over_seeds.py --isa avx2 --table results/claims.md

## Copy the pinned MathJax and ipywidgets JS (package-lock.json) into _vendor/ for offline pages.
vendor: $(VENDORED)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund

$(VENDORED): node_modules/.package-lock.json scripts/vendor_assets.py
	python3 scripts/vendor_assets.py

## Open the built pages in headless Chromium (Playwright) with no network, at 1280 and 1920 px:
## screenshots in _build/browser-check; fails on a browser error, anything wider than the column,
## an equation not typeset, a widget not rendered or an animation that does not move.
browser-check: book
	$(PY) -m pip install --quiet -e ".[browser]"
	$(PY) scripts/browser_check.py --html _build/html --out _build/browser-check
