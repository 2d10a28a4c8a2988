# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

# -qq on the project's install: setuptools prints a generic notice on every editable install.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -qq -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)  ## Generate the synthetic demo region and run the whole pipeline on it.
	$(BIN)/sdoh demo --workspace sdoh_workspace

test: $(STAMP)  ## Run the test suite (SDOH_REQUIRE_SERVICES=1 and SDOH_REQUIRE_REAL_DATA=1 turn skips into failures).
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check sdoh_sources ingestion feature_repo equity tests benchmarks

bench: $(STAMP)  ## Side-by-side performance measurements (not part of the tests).
	$(BIN)/python -m benchmarks.training_frame
	$(BIN)/python -m benchmarks.linking --small

clean:
	rm -rf sdoh_workspace .pytest_cache
