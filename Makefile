# The two quick-start commands are `make book` and `make test`; each sets up .venv itself.
PY      := .venv/bin/python
STAMP   := .venv/.installed
export LADDER_DATA ?= $(abspath ../shared/data)
export OMP_NUM_THREADS ?= 2
export PYTHONHASHSEED = 0

.PHONY: book test unit nbval execute clean-notebooks check-notebooks vendor lint benchmarks

$(STAMP): pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install --quiet -e ".[dev,book]"
	touch $(STAMP)

## Build the book (HTML in _build/html) from the executed notebooks.
book: $(STAMP) vendor
	.venv/bin/jupyter-book build . -W --keep-going

## Run every check CI runs: lint, unit tests, notebook canonical form, nbval.
test: $(STAMP)
	.venv/bin/ruff check ladder tests benchmarks
	$(PY) -m pytest tests
