# The two set-up commands of the README:
#   make demo   fetch the built-in data, train the demo models once, serve the app
#   make test   set up and run the whole test suite
# Both create or update ./.venv and (re)build what they need.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
HOME_DIR ?=

.PHONY: demo test venv frontend system-deps clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch is pinned (==2.13.0); pip takes the CPU wheel on this machine's disk.
	$(PIP) install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Built into src/rnnvis/web so a wheel serves the UI with no Node at run time.
frontend:
	@if [ -f frontend/package.json ]; then \
	  cd frontend && npm ci --no-audit --no-fund && npm run build; \
	fi

# Debian packages used by the data sets and the browser tests (root only; skipped otherwise).
# The browser tests drive Debian's chromium (never a browser downloaded by a test tool).
system-deps:
	@if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq >/dev/null 2>&1 || true; \
	  command -v chromium >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

demo: venv frontend system-deps
	$(VENV)/bin/rnnvis demo $(if $(HOME_DIR),--home $(HOME_DIR))

test: venv frontend system-deps
	@if [ -f frontend/package.json ]; then cd frontend && npm test; fi
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) build dist src/*.egg-info
