# Two commands do all set-up on a fresh Debian machine: `make serve` and `make test`.
# Both create .venv and install the project into it, with the C compiler and Python headers
# (gcc, python3-dev) the compiled UDP fast path and name-table walk build with; `make test` also
# installs the system tools the tests drive for real (dig, Chromium) when they are missing.
# `make install` installs the service for systemd (systemd/install.sh says where; DESTDIR=,
# PREFIX=, SYSCONFDIR=, UNITDIR= override), with the query path compiled by mypyc (MYPYC=0: pure
# Python); `make uninstall` removes the program and units.

PYTHON ?= python3
MYPYC ?= 1
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: serve test test-compiled compiled-tree bench lint format clean venv compiled system-test-deps install uninstall

venv: $(STAMP)

# Python 3.11+ with its venv module (Debian ships that apart, as python3-venv).
define NEED_PYTHON
@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	{ echo "safe-resolver needs Python 3.11 or newer"; exit 1; }
@$(PYTHON) -m venv --help >/dev/null 2>&1 && $(PYTHON) -c 'import ensurepip' 2>/dev/null || \
	sh tests/install-system-deps.sh python3-venv
endef

# gcc and Python's headers for resolver/dns/_fastpath.c and resolver/match/_packed.c. Without
# them (no root, another OS) the install still succeeds and the pure-Python twins serve.
define NEED_COMPILER
@command -v gcc >/dev/null 2>&1 && $(PYTHON) -c 'import os, sys, sysconfig; \
	sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' || \
	sh tests/install-system-deps.sh gcc python3-dev
endef

$(STAMP): pyproject.toml setup.py resolver/dns/_fastpath.c resolver/match/_packed.c \
		resolver/dns/_untrack.c resolver/dns/_question.c
	$(NEED_PYTHON)
	$(NEED_COMPILER)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

# Optional: also compile the Python modules of a first-seen query's path with mypyc (setup.py
# lists them), from the same source. A compiled module shadows its .py: run this again after
# editing one of them, or `make clean venv` to go back to the pure-Python modules.
compiled: $(STAMP)
	$(BIN)/pip install --quiet mypy "setuptools>=68" wheel
	SAFE_RESOLVER_MYPYC=1 $(BIN)/pip install --quiet --no-build-isolation -e '.[test]'

serve: $(STAMP)
	$(BIN)/safe-resolver serve --policy policy/default.yaml --listen 127.0.0.1:5335 \
		--blockpage-listen 127.0.0.1:8080 --admin-listen 127.0.0.1:8053 --log-level info

system-test-deps:
	@sh tests/install-system-deps.sh

test: $(STAMP) system-test-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	# Three test processes: most tests wait on real servers starting and answering, so three
	# keep two cores busy; a file's tests stay together (they share its servers).
	$(BIN)/pytest -q -n 3 --dist loadfile

# The build `make install` deploys (the C fast path and the mypyc modules), made apart: a copy of
# this tree in build/compiled gets its own venv and the compiled modules, so the .py files here
# stay what `make test` and `make serve` run.
COMPILED := build/compiled
compiled-tree:
	rm -rf $(COMPILED) && mkdir -p $(COMPILED)
	git ls-files -z | xargs -0 cp -P --parents -t $(COMPILED)
	$(MAKE) -C $(COMPILED) compiled
	cd $(COMPILED) && .venv/bin/python -c 'from resolver.dns.fastpath import mypyc_compiled; \
		assert mypyc_compiled(), "the mypyc modules were not built"'

# The suites of the query path on the compiled build. .ci/run runs it after `make test`.
test-compiled: system-test-deps compiled-tree
	cd $(COMPILED) && .venv/bin/pytest -q -n 3 --dist loadfile tests/dns tests/dns_e2e \
		tests/policy_e2e tests/isp tests/encrypted tests/observability

# Measures what `make install` deploys: the benchmarks run from the compiled tree; their results
# are copied to bench/results. (bench/README.md: the pure-Python build beside it.)
bench: compiled-tree
	@sh bench/install-peers.sh
	cd $(COMPILED) && .venv/bin/python -m bench
	mkdir -p bench/results && cp -p $(COMPILED)/bench/results/* bench/results/

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The service runs on the system's Python (security updates come with the OS), not a user's.
install: PYTHON = /usr/bin/python3
install:
	$(NEED_PYTHON)
	$(NEED_COMPILER)
	@PYTHON='$(PYTHON)' DESTDIR='$(DESTDIR)' PREFIX='$(PREFIX)' SYSCONFDIR='$(SYSCONFDIR)' \
		UNITDIR='$(UNITDIR)' MYPYC='$(MYPYC)' sh systemd/install.sh install

uninstall:
	@DESTDIR='$(DESTDIR)' PREFIX='$(PREFIX)' SYSCONFDIR='$(SYSCONFDIR)' UNITDIR='$(UNITDIR)' \
		sh systemd/install.sh uninstall

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build
	rm -f *__mypyc*.so
	find resolver -name '*.so' -delete
