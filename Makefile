# One command each: `make demo` runs the showcase, `make test` runs the test suite.
# Both build the local virtual environment first (.venv), so a fresh clone needs nothing else.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.ebmlang-installed

.PHONY: demo test test-slow bench bench-smoke env clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# Pinned: an unpinned torch pulls gigabytes of CUDA packages.
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(PY) -m ebmlang.cli.showcase --out showcase

# The everyday suite (~11 min on 2 cores; the target is 5); `test-slow` adds the long statistical and end-to-end runs and
# the full fuzz profile. CI runs both.
test: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

test-slow: $(STAMP)
	HYPOTHESIS_PROFILE=ci $(PY) -m pytest -q -m "slow or fuzz"

bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]" || echo "some peer libraries could not be installed; they are reported as missing"
	$(PY) benchmarks/run_all.py --write docs/benchmarks.md

bench-smoke: $(STAMP)
	$(PY) benchmarks/run_all.py --smoke

clean:
	rm -rf $(VENV) build *.egg-info showcase
