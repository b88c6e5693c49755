# tessera — the two commands a newcomer needs are `make serve` and `make test`.
# Each does its own set-up: the virtual environment, the install, and (for tests)
# the Debian packages the tests drive (PostgreSQL, Redis, nginx, openssl, curl, wrk, Chromium).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
HOME_DIR ?= $(or $(TESSERA_HOME),.tessera)
PYTEST_ARGS ?=
# pytest-xdist workers for `make test`. The suite mostly waits on subprocesses and sockets
# (tessera serve, PostgreSQL, nginx, Chromium), so more workers than the 2 cores pay.
# Modules stay whole on one worker (--dist loadscope): their module-scoped live servers start once.
# The longest modules are handed out first (tests/support/schedule.py); docs/testing.md has the figures.
TEST_WORKERS ?= 4
XDIST := -n $(TEST_WORKERS) --dist loadscope
# The fast tests are CPU-bound: one worker per core.
FAST_WORKERS ?= 2
# Branch-coverage floors: core under `make test-fast`, the whole package under `make coverage`.
CORE_BRANCH_FLOOR ?= 95
TOTAL_FLOOR ?= 95.5
COV_JSON := coverage.json

.PHONY: serve test test-fast coverage check install test-deps bench clean

# Bytecode caches on: with PYTHONDONTWRITEBYTECODE set (some machines set it), every `tessera`
# process and every pytest worker compiled tessera's modules, and pytest rewrote the test modules,
# from source at each start (an installed wheel has its bytecode compiled by pip). `make test`
# compiles the package once before the workers start (docs/testing.md).
unexport PYTHONDONTWRITEBYTECODE
COMPILE := $(BIN)/python -m compileall -q -j 0 tessera

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

# Every test, the slow ones (real servers, PostgreSQL, the browser) included, on $(TEST_WORKERS) workers.
# Two runs: everything on the workers, then the few tests that measure time or CPU alone (-m serial,
# tests/support/serial.py, which names the files the second run collects). pytest's "no tests
# collected" (5) of one run is not a failure if the other ran.
test: $(STAMP) test-deps
	@$(COMPILE)
	@a=0; b=0; \
	$(BIN)/python -m pytest $(XDIST) -m "not serial" $(PYTEST_ARGS) || a=$$?; \
	$(BIN)/python -m pytest -m serial $(PYTEST_ARGS) $$($(BIN)/python -m tests.support.serial) || b=$$?; \
	if [ $$a -eq 5 ] && [ $$b -eq 5 ]; then exit 5; fi; \
	for rc in $$a $$b; do if [ $$rc -ne 0 ] && [ $$rc -ne 5 ]; then exit $$rc; fi; done

# The fast in-process tests only, under branch coverage; fails if tessera/core falls under
# $(CORE_BRANCH_FLOOR) % of its branches.
test-fast: $(STAMP)
	@rm -f .coverage .coverage.*
	@$(COMPILE)
	$(BIN)/python -m coverage run -m pytest -n $(FAST_WORKERS) -m "not slow and not serial" -q $(PYTEST_ARGS)
	$(BIN)/python -m coverage run -m pytest -m "not slow and serial" -q $(PYTEST_ARGS) $$($(BIN)/python -m tests.support.serial)
	@$(BIN)/python -m coverage combine -q
	@$(BIN)/python -m coverage json -q -o $(COV_JSON)
	$(BIN)/python -m tests.support.coverage_floor $(COV_JSON) --package tessera/core --branches $(CORE_BRANCH_FLOOR)

# The whole suite under branch coverage, the live `tessera serve` subprocesses included
# (coverage's `patch = ["subprocess"]`); fails under $(TOTAL_FLOOR) % (statements and branches).
coverage: $(STAMP) test-deps
	@rm -f .coverage .coverage.*
	$(BIN)/python -m coverage run -m pytest $(XDIST) -m "not serial" $(PYTEST_ARGS)
	$(BIN)/python -m coverage run -m pytest -m serial $(PYTEST_ARGS) $$($(BIN)/python -m tests.support.serial)
	@$(BIN)/python -m coverage combine -q
	@$(BIN)/python -m coverage json -q -o $(COV_JSON)
	$(BIN)/python -m tests.support.coverage_floor $(COV_JSON) --total $(TOTAL_FLOOR)

# The gates CI runs before the tests: formatting, lint, types. Any finding fails.
check: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	@bench/run.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info .coverage .coverage.* $(COV_JSON)
