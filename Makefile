# kezhao — the two commands a user needs:
#   make run PHOTOS=~/客户照片     set up, index the folder, open the web app
#   make test                     set up, then run every test (browser tests included)
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
PHOTOS  ?=
MODEL   ?=
ARGS    ?=

.PHONY: run test lint setup test-deps bench

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,ocr,fast]'
	touch $@

setup: $(VENV)/.installed

run: $(VENV)/.installed
	$(VENV)/bin/kezhao ui $(PHOTOS) $(if $(MODEL),--model $(MODEL)) $(ARGS)

test-deps:
	@sh scripts/ensure-test-deps.sh

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

test: $(VENV)/.installed test-deps lint
	$(PY) -m pytest
