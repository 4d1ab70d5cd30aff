# codex-proxy — every target installs what it needs first (into .venv at the repo root).
#   make start   install, then run the proxy (mitmdump -s addons/codex.py) on 127.0.0.1:8080
#   make test    install everything the suite needs, then run it
#   make demo    the proxy against the bundled fake Codex backend (no ChatGPT account needed)
#   make web     like start, with mitmweb's live flow view
#   make replay-fixtures  regenerate tests/fixtures/replay/*.flows from the fake backend

VENV    := .venv
PY      := $(VENV)/bin/python
PYTHON  ?= $(shell command -v python3.12 || command -v python3)
STAMP   := $(VENV)/.installed

.PHONY: install start web demo test replay-fixtures clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else "Python 3.12+ is needed (mitmproxy 12); found " + sys.version)'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

start: $(STAMP)
	$(VENV)/bin/mitmdump -s addons/codex.py $(ARGS)

web: $(STAMP)
	$(VENV)/bin/mitmweb -s addons/codex.py $(ARGS)

demo: $(STAMP)
	$(VENV)/bin/mitmdump -s addons/codex.py --set codex_demo=true $(ARGS)

test: $(STAMP)
	$(PY) -m pytest $(ARGS)

replay-fixtures: $(STAMP)
	$(PY) -m tests.fixtures.replay.make_fixtures

clean:
	rm -rf $(VENV) .pytest_cache
