# Two commands: `make run` serves Troika with demo data; `make test` runs the whole suite.
PYTHON ?= python3
PORT ?= 8000
HOST ?= 127.0.0.1
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint schema lock install clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --require-hashes -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

# GraphiQL (/graphql) and the console (/console) load in any browser; the development demo also
# opens introspection to every caller, so GraphiQL knows the schema before you paste the operator
# key. The app refuses this flag in production.
run: install
	$(BIN)/troika migrate
	$(BIN)/troika demo --if-empty
	@$(BIN)/troika dev-token --host $(HOST) --port $(PORT)
	TROIKA_GRAPHQL_PUBLIC_INTROSPECTION=$${TROIKA_GRAPHQL_PUBLIC_INTROSPECTION:-true} \
	  $(BIN)/troika serve --host $(HOST) --port $(PORT)

# tests/js: the reference graphql-ws client's pinned packages (its test skips without Node.js).
test: install
	@if command -v npm >/dev/null; then cd tests/js && npm ci --no-audit --no-fund --loglevel=error; fi
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/deptry .

schema: install
	$(BIN)/strawberry export-schema graphql_schema.schema:schema --output schema.graphql

lock:
	$(BIN)/pip-compile -q --extra dev --generate-hashes --allow-unsafe --strip-extras -o requirements.lock pyproject.toml
	# The image's lock (Dockerfile): the runtime dependencies only, at the same pins.
	$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras -c requirements.lock \
	  -o requirements.runtime.lock pyproject.toml

clean:
	rm -rf $(VENV) var/*.db var/*.db-* .pytest_cache .mypy_cache .ruff_cache
