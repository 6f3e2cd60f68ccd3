# siyu — every set-up step lives here, so a fresh machine needs only Python 3.11, Node 20 and the registries.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SIYU := $(BIN)/siyu
STAMP := $(VENV)/.installed

.PHONY: demo test setup serve lint e2e-browser clean-demo

demo: setup ## install, migrate, load the demo brand, serve console + API on http://127.0.0.1:8000
	$(SIYU) init-keys
	$(SIYU) migrate --noinput
	$(SIYU) demo
	$(SIYU) serve

test: setup e2e-browser ## the whole suite (set DATABASE_URL to run it on PostgreSQL)
	$(BIN)/ruff check siyu
	@$(BIN)/pytest -q $(PYTEST_ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo 'pytest ran no test: failing'; exit 1; fi; exit $$rc

setup: $(STAMP) siyu/console/vendor/.stamp
	$(SIYU) compile_locale

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "$(PY) not found: install Python 3.11"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

siyu/console/vendor/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund
	mkdir -p siyu/console/vendor/vendor
	cp node_modules/htmx.org/dist/htmx.min.js siyu/console/vendor/vendor/htmx.min.js
	cp node_modules/echarts/dist/echarts.min.js siyu/console/vendor/vendor/echarts.min.js
	touch $@

e2e-browser: ## Debian's Chromium (+ a CJK font) for the headless end-to-end tests; Playwright cannot download browsers here
	@{ command -v chromium >/dev/null 2>&1 && fc-list 2>/dev/null | grep -qi wqy; } || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null; }

serve: setup
	$(SIYU) serve

lint: setup
	$(BIN)/ruff check siyu
