# The two set-up commands of the README. Both create .venv, install torch/torchvision from
# this machine's disk with pip (never uv/poetry for torch), then attnlab pinned.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test install install-test

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install torch==2.14.1 torchvision==0.29.1

install: $(BIN)/python
	$(BIN)/pip install -e .

install-test: $(BIN)/python
	$(BIN)/pip install -e '.[test]'

# Main job on embedded defaults.
run: install
	$(BIN)/attnlab run

# The test suite (what .ci/run calls).
test: install-test
	$(BIN)/python -m pytest -q
