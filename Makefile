# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
WORKERS ?= 2
export PORT WORKERS

.PHONY: run test lint bench lock clean chromium wrk faults swagger-ui env-example image

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

test: $(VENV)/.dev-installed chromium wrk
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# The browser tests drive Debian's Chromium (never a downloaded browser). As root, `make test`
# installs it when missing; otherwise those tests are skipped with a message saying so.
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM
chromium:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make: installing Debian's chromium for the browser tests (apt-get update + install, a minute or two) ..."; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium \
	      && echo "make: installed $$($(CHROMIUM) --version 2>/dev/null)"; \
	  else \
	    echo "make: ***** $(CHROMIUM) not found: the browser tests will be SKIPPED. *****"; \
	    echo "make: ***** Install it with 'sudo apt-get install chromium' (Debian/Ubuntu) and run make test again. *****"; \
	  fi; \
	fi

# wrk (Debian's) drives the HTTP benchmark, and the tests of `make bench`'s sections that use it.
# As root, `make test` and `make bench` install it when missing; otherwise those tests are
# skipped with a message saying so, and `make bench` stops and says how to install it.
wrk:
	@if ! command -v wrk >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make: installing Debian's wrk for the HTTP benchmark ..."; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk \
	      || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk; }; \
	  else \
	    echo "make: ***** wrk not found: the HTTP benchmark's tests will be SKIPPED. *****"; \
	    echo "make: ***** Install it with 'sudo apt-get install wrk' (Debian/Ubuntu) and run make test again. *****"; \
	  fi; \
	fi

# The benchmark suite (BENCHMARKS.md): its own Redis, web and workers; wrk from Debian.
ROUNDS ?= 3
N ?= 5000
$(VENV)/.bench-installed: requirements-bench.txt $(VENV)/.dev-installed
	$(BIN)/pip install --progress-bar off -r requirements-bench.txt
	@touch $@

bench: $(VENV)/.bench-installed wrk
	@command -v wrk >/dev/null || { echo "make bench needs wrk: run 'sudo apt-get install wrk' (Debian/Ubuntu) and try again"; exit 1; }
	$(BIN)/python -m bench --rounds $(ROUNDS) --jobs $(N)

# Regenerate the pins from requirements.in / requirements-dev.in.
lock: $(VENV)/.installed
	$(BIN)/pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links -o requirements.txt requirements.in
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links -o requirements-dev.txt requirements-dev.in
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links -o requirements-bench.txt requirements-bench.in

# Swagger UI for /api/docs is kept in the repo (webapp/web/swagger_ui/, Apache-2.0, LICENSE and NOTICE
# beside it), so the service installs no package for it. This target replaces those files with
# another release of npm's swagger-ui-dist (`npm pack` only downloads: no install, no scripts).
SWAGGER_UI_VERSION ?= 5.31.0
SWAGGER_UI_FILES := swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui-standalone-preset.js \
  swagger-ui-standalone-preset.js.LICENSE.txt swagger-ui.css LICENSE NOTICE
swagger-ui:
	@command -v npm >/dev/null || { echo "make swagger-ui needs npm: run 'sudo apt-get install npm' and try again"; exit 1; }
	@echo "make: fetching swagger-ui-dist@$(SWAGGER_UI_VERSION) with npm pack ..."
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  (cd "$$tmp" && npm pack --silent "swagger-ui-dist@$(SWAGGER_UI_VERSION)" >/dev/null && tar xzf swagger-ui-dist-*.tgz) && \
	  version=$$(sed -n 's/^ *"version": "\(.*\)",$$/\1/p' "$$tmp/package/package.json") && \
	  for f in $(SWAGGER_UI_FILES); do cp "$$tmp/package/$$f" webapp/web/swagger_ui/ || exit 1; done && \
	  echo "swagger-ui-dist $$version" > webapp/web/swagger_ui/VERSION && \
	  echo "make: webapp/web/swagger_ui/ now holds Swagger UI $$version; run make test, then commit it"
# .env.example lists every setting with its default (tests/test_envfile.py fails when it drifts).
env-example: $(VENV)/.installed
	$(BIN)/flask settings --example > .env.example

# Build the Dockerfile with podman and run the image's web and worker (outside `make test`):
# the base image is made with debootstrap from Debian's packages, so no registry is needed.
image: $(VENV)/.dev-installed
	bash tests/image_check.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# The fault-injection suite alone, longer: more jobs, a longer kill phase (RELIABILITY.md).
faults: $(VENV)/.dev-installed
	FAULT_JOBS=$${FAULT_JOBS:-5000} FAULT_KILL_SECONDS=$${FAULT_KILL_SECONDS:-60} FAULT_ROUNDS=$${FAULT_ROUNDS:-3} $(BIN)/python -m pytest -p no:logging -s tests/faults tests/test_reliability_metrics.py
