# Two entry points for a newcomer: `make demo` and `make test`.
# Both create .venv (once, and again when pyproject.toml changes).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian's Chromium checks the leaderboard's HTML page in a real browser.
CHROMIUM ?= /usr/bin/chromium

.PHONY: demo test test-all benchmark chromium clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m scoring.demo --experiment_dir=runs/demo

chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; \
	fi

test: $(STAMP) chromium
	$(BIN)/pytest -q

# Long tests and benchmarks too (see BENCHMARKS.md for the peer extra).
test-all: $(STAMP) chromium
	$(BIN)/pytest -q -m '' --benchmark-disable

benchmark: $(STAMP)
	$(BIN)/pytest -q -m benchmark --benchmark-enable -s tests/benchmarks

clean:
	rm -rf $(VENV) runs reports .pytest_cache .benchmarks
