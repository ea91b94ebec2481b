# The two set-up commands of the README. Both create .venv, install torch/torchvision from
# this machine's disk with pip (never uv/poetry for torch), then attnlab with the tested set
# (constraints.txt; pyproject.toml states the ranges). pip -qq prints errors only: setuptools'
# notice on every editable install and pip's warnings about this machine's index configuration
# are no news to a user, and a failing install still fails loudly.
PY ?= python3.11
# pytest-xdist processes for `make test` (what CI runs): whole files in 3 processes on CI's 2 cores,
# slow files first (at 2 the cores idled 9% of the run, waiting on Ray's start, servers and drills'
# pauses; at 3, 4%, and the suite took 1241 s against 1313 s); TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test install install-test

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -qq --upgrade pip
	$(BIN)/pip install -qq -c constraints.txt torch torchvision

install: $(BIN)/python
	$(BIN)/pip install -qq -c constraints.txt -e .

install-test: $(BIN)/python
	$(BIN)/pip install -qq -c constraints.txt -e '.[test]'

# Main job on embedded defaults.
run: install
	$(BIN)/attnlab run

# The test suite (what .ci/run calls): the linter first, then pytest, whole files per worker (a
# file's module fixtures, such as the README's fresh venv, are made once).
test: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=20
