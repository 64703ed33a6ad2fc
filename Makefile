# xnli-study: `make study` runs the whole study on the default profile; `make test` runs every test.
# Both create the environment (.venv) first when it is missing or older than pyproject.toml.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is installed first and pinned: on a machine without a GPU this is the CPU build; a bare
# `torch` requirement in a fresh environment would pull a multi-GB CUDA build. Override with
# e.g. `make study TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"`.
TORCH_SPEC ?= torch==2.13.0
PARAMS ?= params/smoke.yaml
STAMP := $(VENV)/.installed

.PHONY: env study test test-fast lab notebooks clean-outputs

env: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[dev]"
	$(VENV)/bin/xnli-study kernel
	@touch $(STAMP)

study: env
	$(VENV)/bin/xnli-study run --params $(PARAMS)

test: env
	$(PY) -m pytest

test-fast: env
	$(PY) -m pytest -m "not slow and not real and not browser and not lab"

lab: env
	$(VENV)/bin/jupyter lab notebooks/

# keep the .ipynb notebooks and their py:percent twins in step (edit either, then run this)
notebooks: env
	$(VENV)/bin/jupytext --sync notebooks/*.ipynb

clean-outputs:
	rm -rf outputs/*/
