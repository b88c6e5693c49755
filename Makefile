# tessera — the two commands a newcomer needs are `make serve` and `make test`.
# Each does its own set-up: the virtual environment, the install, and (for tests)
# the Debian packages the tests drive (PostgreSQL, Redis, nginx, openssl, curl, wrk, Chromium).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
HOME_DIR ?= $(or $(TESSERA_HOME),.tessera)
PYTEST_ARGS ?=

.PHONY: serve test test-fast install test-deps bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP)

serve: $(STAMP)
	@test -f $(HOME_DIR)/tessera.toml || $(BIN)/tessera --home $(HOME_DIR) init
	$(BIN)/tessera --home $(HOME_DIR) serve

test-deps:
	@scripts/install-test-deps.sh

# Every test, the slow ones (real servers, PostgreSQL, the browser) included.
test: $(STAMP) test-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The fast unit tests only.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	@bench/run.sh

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
