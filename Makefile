# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo notebooks test lint bench clean

# -qq on the project's install: setuptools prints a generic notice on every editable install.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -qq -e '.[dev]'
	touch $(STAMP)

WORKSPACE := sdoh_workspace

demo: $(STAMP)  ## Generate the synthetic demo region and run the whole pipeline on it.
	$(BIN)/sdoh demo --workspace $(WORKSPACE)

# The notebooks read the demo's training frame: build the demo only when it is absent.
$(WORKSPACE)/outputs/training_frame.parquet: | $(STAMP)
	$(BIN)/sdoh demo --workspace $(WORKSPACE)

# Executed copies go to the workspace; the repository's notebooks stay as they are.
notebooks: $(WORKSPACE)/outputs/training_frame.parquet | $(STAMP)  ## Execute every notebook on the demo.
	SDOH_WORKSPACE=$(CURDIR)/$(WORKSPACE) $(BIN)/jupyter nbconvert --to notebook --execute \
		--ExecutePreprocessor.timeout=600 --output-dir $(WORKSPACE)/notebooks notebooks/*.ipynb

test: $(STAMP)  ## Run the test suite (SDOH_REQUIRE_SERVICES=1 and SDOH_REQUIRE_REAL_DATA=1 turn skips into failures).
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check sdoh_sources ingestion feature_repo equity tests benchmarks

bench: $(STAMP)  ## Side-by-side performance measurements (not part of the tests).
	$(BIN)/python -m benchmarks.training_frame
	$(BIN)/python -m benchmarks.linking --small

clean:
	rm -rf $(WORKSPACE) .pytest_cache
