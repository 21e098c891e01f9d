# The two set-up commands are `make run` and `make test`; everything else
# here is what they need. Both work on a fresh machine with only Python 3.11+
# (and Node.js for the test suite's OpenID provider).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install run test bench lint clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

# Starts the service with an embedded PostgreSQL, the real CDE directory and a
# sample CCI release, and prints how to get a token and query it.
run: install
	$(BIN)/soars dev setup
	@$(BIN)/python -m soars.howto
	$(BIN)/soars serve

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench $(STEPS)

# Style and types, with the versions pinned in pyproject.toml's lint extra.
lint: install
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,lint]'
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .soars
