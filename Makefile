# The verbs people type. Every target uses the project's own virtualenv in .venv,
# created on first use, so a fresh clone needs nothing but python3 (>= 3.11).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: test lint format demo install-prometheus bench golden clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Rewrite every golden file from the current code; review the result with `git diff`.
golden: $(STAMP)
	$(BIN)/pytest --update-golden $(PYTEST_ARGS)

# The demo needs a Prometheus binary: on Debian it is installed when missing (as root, or through
# sudo when that needs no password); otherwise the demo itself says how to install it.
demo: $(STAMP)
	@command -v prometheus >/dev/null 2>&1 || $(MAKE) --no-print-directory install-prometheus
	$(BIN)/python -m demo

install-prometheus:
	@if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "no apt-get here: install Prometheus (2.x) yourself"; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y prometheus; \
	elif sudo -n true 2>/dev/null; then \
	  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y prometheus; \
	else \
	  echo "Prometheus is missing: sudo apt-get install -y prometheus"; \
	fi

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
