# make demo  - the whole job end to end on embedded defaults (local Spark, a local folder, real data)
# make test  - lint, types and the whole test suite (sets itself up)
# make bench - side-by-side benchmarks against mosaicml-streaming, printed as ratios

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
MOSAIC_VENV := .venv-mosaic
# LitData, the second benchmark peer (benchmarks only: make test does not need it).
LITDATA_VENV := .venv-litdata
PIP_FLAGS := -q --disable-pip-version-check -c constraints.txt
# Azurite (Azure Blob test server) from npm, into a git-ignored folder; 3.35.0 is the newest
# release that runs on Node 20 (later ones need Node >= 21).
TOOLS := .tools
AZURITE_VERSION := 3.35.0

.PHONY: demo test lint typecheck pytest bench setup clean

setup: $(VENV)/.installed $(MOSAIC_VENV)/.installed $(TOOLS)/.azurite-$(AZURITE_VERSION)

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) torch==2.13.0
	$(BIN)/pip install $(PIP_FLAGS) -e '.[dev]'
	# The notebook tests run this kernel: the venv's interpreter by absolute path.
	$(BIN)/python -m ipykernel install --sys-prefix --name sparkshard --display-name "Python (sparkshard)"
	touch $@

$(MOSAIC_VENV)/.installed: tests/compat/mosaic-requirements.txt constraints.txt
	test -x $(MOSAIC_VENV)/bin/python || $(PYTHON) -m venv $(MOSAIC_VENV)
	$(MOSAIC_VENV)/bin/pip install $(PIP_FLAGS) torch==2.13.0
	$(MOSAIC_VENV)/bin/pip install $(PIP_FLAGS) -r tests/compat/mosaic-requirements.txt
	# Mosaic imports torchvision at import time, and the only torchvision wheels are CUDA
	# builds that fail against CPU torch: swap in the tiny stand-in under tests/compat/stubs.
	$(MOSAIC_VENV)/bin/pip uninstall -q -y torchvision
	$(MOSAIC_VENV)/bin/python -c "import site; print('$(CURDIR)/tests/compat/stubs')" \
		> "$$($(MOSAIC_VENV)/bin/python -c 'import site; print(site.getsitepackages()[0])')/sparkshard-stubs.pth"
	touch $@

$(LITDATA_VENV)/.installed: benchmarks/litdata-requirements.txt constraints.txt
	test -x $(LITDATA_VENV)/bin/python || $(PYTHON) -m venv $(LITDATA_VENV)
	$(LITDATA_VENV)/bin/pip install $(PIP_FLAGS) torch==2.13.0
	$(LITDATA_VENV)/bin/pip install $(PIP_FLAGS) -r benchmarks/litdata-requirements.txt
	touch $@

$(TOOLS)/.azurite-$(AZURITE_VERSION):
	npm install --prefix $(TOOLS) --no-audit --no-fund --loglevel=error azurite@$(AZURITE_VERSION)
	touch $@

lint: $(VENV)/.installed
	$(BIN)/ruff check sparkshard loader tests benchmarks demo notebooks
	$(BIN)/ruff format --check sparkshard loader tests benchmarks demo notebooks

typecheck: $(VENV)/.installed
	$(BIN)/mypy

pytest: setup
	PYSPARK_PYTHON=$(CURDIR)/$(BIN)/python SPARKSHARD_REQUIRE_MOSAIC=1 SPARKSHARD_REQUIRE_SERVERS=1 \
		$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test: lint typecheck pytest

demo: $(VENV)/.installed
	PYSPARK_PYTHON=$(CURDIR)/$(BIN)/python $(BIN)/python -m demo

bench: setup $(LITDATA_VENV)/.installed
	PYSPARK_PYTHON=$(CURDIR)/$(BIN)/python $(BIN)/python -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(MOSAIC_VENV) $(LITDATA_VENV) $(TOOLS) demo-output notebooks/notebook-output bench-output .pytest_cache .mypy_cache .ruff_cache
