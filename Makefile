# The two commands of the README, plus what developers use day to day.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: demo test test-fast lint bench contracts system venv clean-lab

demo: system venv  ## migrate a 50-mailbox lab tenant end to end, with live progress
	$(BIN)/homebound demo

test: system venv  ## the whole suite, end-to-end and chaos runs included
	$(BIN)/pytest

test-fast: system venv  ## everything except the long end-to-end and chaos runs
	$(BIN)/pytest -m "not e2e and not chaos"

lint: venv
	$(BIN)/ruff check contracts events agents lab bench tests
	$(BIN)/mypy
	$(BIN)/homebound contracts export --check

bench: system venv
	$(BIN)/python -m bench.runtime

contracts: venv  ## regenerate JSON Schema, AsyncAPI and the RabbitMQ definitions
	$(BIN)/homebound contracts export

system:
	@bash scripts/ensure-system.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

clean-lab:
	-$(BIN)/homebound lab down --dir .lab
	-$(BIN)/homebound lab down --dir .lab-test
