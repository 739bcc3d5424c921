# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
WORKERS ?= 2
export PORT WORKERS

.PHONY: run test lint bench lock clean faults

# The venv is (re)installed only when the pinned requirements change.
$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed, found " + sys.version.split()[0]' \
	  || { echo "make: set PYTHON=/path/to/python3.11 (or newer)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	@echo "make: installing the pinned requirements into $(VENV) ..."
	$(BIN)/pip install --progress-bar off -r requirements.txt
	@touch $@

$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.installed
	@echo "make: installing the test tools into $(VENV) ..."
	$(BIN)/pip install --progress-bar off -r requirements-dev.txt
	@touch $@

run: $(VENV)/.installed
	$(BIN)/python -m webapp.launcher

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# Regenerate the pins from requirements.in / requirements-dev.in.
lock: $(VENV)/.installed
	$(BIN)/pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links -o requirements.txt requirements.in
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links -o requirements-dev.txt requirements-dev.in

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# The fault-injection suite alone, longer: more jobs, a longer kill phase (RELIABILITY.md).
faults: $(VENV)/.dev-installed
	FAULT_JOBS=$${FAULT_JOBS:-5000} FAULT_KILL_SECONDS=$${FAULT_KILL_SECONDS:-60} FAULT_ROUNDS=$${FAULT_ROUNDS:-3} $(BIN)/python -m pytest -p no:logging -s tests/faults tests/test_reliability_metrics.py
