# codex-proxy — every target installs what it needs first (into .venv at the repo root).
#   make start   install, then run the proxy (mitmdump -s addons/codex.py) on 127.0.0.1:8080
#   make test    install everything the suite needs (Python packages, the real client CLIs
#                pinned by the lockfiles under tests/cli/ via npm, Chromium, tinyproxy and microsocks),
#                then run it
#   make demo    the proxy against the bundled fake Codex backend (no ChatGPT account needed)
#   make web     like start, with mitmweb's live flow view
#   make bench   the benchmark: added latency, throughput, concurrent streams (report in bench-results/)
#   make replay-fixtures  regenerate tests/fixtures/replay/*.flows from the fake backend
#   make screenshots      regenerate docs/screenshots/*.png (the dashboard pages in the README)
#   make vendor   re-fetch the dashboard's pinned front-end libraries (dashboard/static/vendor/vendor.json)

VENV    := .venv
PY      := $(VENV)/bin/python
PYTHON  ?= $(shell command -v python3.12 || command -v python3)
STAMP   := $(VENV)/.installed
# npm ci writes this file: the CLIs the tests drive (Claude Code) are installed and current
CLI     := tests/cli/node_modules/.package-lock.json
GEMINI_CLI := tests/cli/gemini/node_modules/.bin/gemini
CODEX_CLI := tests/cli/codex/node_modules/.bin/codex
CLIENT_CLIS := $(foreach name,pi cline qwen,tests/cli/$(name)/node_modules/.package-lock.json)
# The dashboard's browser tests drive Debian's Chromium through Playwright (not Playwright's download).
CHROMIUM ?= /usr/bin/chromium
# The proxy-pool tests start real proxy servers: Debian's tinyproxy (HTTP) and microsocks (SOCKS5).
PROXY_SERVERS := /usr/bin/tinyproxy /usr/bin/microsocks
# The shared-store tests start a real PostgreSQL server of their own (Debian's postgresql package).
PG_CTL  := /usr/lib/postgresql/*/bin/pg_ctl
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install start web demo test bench replay-fixtures screenshots vendor clean postgresql

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else "Python 3.12+ is needed (mitmproxy 12); found " + sys.version)'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

$(CLI): tests/cli/package.json tests/cli/package-lock.json
	npm ci --prefix tests/cli --no-audit --no-fund

start: $(STAMP)
	$(VENV)/bin/mitmdump -s addons/codex.py $(ARGS)

web: $(STAMP)
	$(VENV)/bin/mitmweb -s addons/codex.py $(ARGS)

demo: $(STAMP)
	$(VENV)/bin/mitmdump -s addons/codex.py --set codex_demo=true $(ARGS)

# The real Gemini CLI (pinned in tests/cli/gemini/package-lock.json) for tests/cli/.
$(GEMINI_CLI): tests/cli/gemini/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js 20+) is needed to install the Gemini CLI the tests drive"; exit 1; }
	npm ci --prefix tests/cli/gemini --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

# The real Codex CLI (pinned in tests/cli/codex/package-lock.json): its fingerprint is the reference.
$(CODEX_CLI): tests/cli/codex/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js 20+) is needed to install the Codex CLI the tests drive"; exit 1; }
	npm ci --prefix tests/cli/codex --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

# More real clients for tests/cli/, each pinned by its own lockfile: the pi coding agent, Cline's
# CLI and Qwen Code (their install scripts only fetch optional extras, so they are skipped).
tests/cli/%/node_modules/.package-lock.json: tests/cli/%/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js 20+) is needed to install the client CLIs the tests drive"; exit 1; }
	# npm ci refuses a lock file that lists optional per-platform binaries the registry does not
	# publish (cline, qwen-code); npm install --no-save still installs exactly the locked versions.
	npm ci --prefix tests/cli/$* --no-audit --no-fund --ignore-scripts --loglevel=error || \
	  npm install --no-save --prefix tests/cli/$* --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $@

$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "The browser tests need Chromium at $(CHROMIUM): install it, or point CHROMIUM=... at one"; exit 1; }
	$(SUDO) apt-get install -y chromium || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }
	@test -x $(CHROMIUM) || { echo "Debian's chromium is at /usr/bin/chromium, not at CHROMIUM=$(CHROMIUM)"; exit 1; }

$(PROXY_SERVERS) &:
	@command -v apt-get >/dev/null || { echo "The proxy-pool tests need tinyproxy and microsocks: install them"; exit 1; }
	$(SUDO) apt-get install -y --no-install-recommends tinyproxy microsocks || { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends tinyproxy microsocks; }

# Only the server's programs are used (initdb, pg_ctl): the tests run their own cluster in a temporary folder.
postgresql:
	@ls $(PG_CTL) >/dev/null 2>&1 || { command -v apt-get >/dev/null || { echo "The shared-store tests need PostgreSQL's server programs (Debian: apt-get install postgresql)"; exit 1; }; \
	  $(SUDO) apt-get install -y postgresql || { $(SUDO) apt-get update && $(SUDO) apt-get install -y postgresql; }; }
	@ls $(PG_CTL) >/dev/null 2>&1 || { echo "postgresql is installed but no $(PG_CTL) was found"; exit 1; }

test: $(STAMP) $(CLI) $(GEMINI_CLI) $(CODEX_CLI) $(CLIENT_CLIS) $(CHROMIUM) $(PROXY_SERVERS) postgresql
	CODEX_PROXY_CHROMIUM=$(CHROMIUM) $(PY) -m pytest $(ARGS)

screenshots: $(STAMP) $(CHROMIUM)
	CODEX_PROXY_CHROMIUM=$(CHROMIUM) CODEX_PROXY_SCREENSHOTS=docs/screenshots $(PY) -m pytest tests/browser/test_screenshots.py $(ARGS)

vendor:
	$(PY) scripts/vendor_frontend.py

bench: $(STAMP)
	$(PY) -m bench $(ARGS)

replay-fixtures: $(STAMP)
	$(PY) -m tests.fixtures.replay.make_fixtures

clean:
	rm -rf $(VENV) .pytest_cache tests/cli/node_modules tests/cli/*/node_modules
