# mer: the two commands a new user needs are `make demo` and `make test`; both install first when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mer-installed

DATASET   ?= folder
DATA_ROOT ?=
STORE     ?= store
LABELS    ?= original
WORKERS   ?= 2
DEMO_DIR  ?= demo

.PHONY: install demo test lint preprocess bench device-kit clean

install: $(STAMP)

# Re-installs when pyproject.toml changes. torch comes from the package registry (CUDA build; runs on CPU too).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,cluster,remote]"
	$(BIN)/python -c "import torch, cv2, dlib, zarr, numba; cv2.optflow.DualTVL1OpticalFlow_create"
	touch $(STAMP)

demo: install
	$(BIN)/mer-cli demo --out $(DEMO_DIR)

# pytest exits 5 when it collects no test; make treats every non-zero exit as a failure, so "no tests" fails.
# The QC page test runs in headless Chromium: installed here when missing and possible (root with apt), else skipped.
test: install
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get update -qq && apt-get install -y -qq chromium; } >/dev/null 2>&1; } || \
	  echo "chromium not installed: the QC page browser test will be skipped"
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: install
	$(BIN)/ruff check mer tests benchmarks

preprocess: install
	@test -n "$(DATA_ROOT)" || { echo "usage: make preprocess DATASET=samm DATA_ROOT=/path/to/SAMM STORE=store"; exit 2; }
	$(BIN)/mer-cli preprocess --dataset $(DATASET) --root $(DATA_ROOT) --store $(STORE) --labels $(LABELS) --workers $(WORKERS)

# Sizes chosen by the device: full (CASME II-sized) with CUDA, quick (minutes) on a CPU; printed per benchmark.
bench: install
	$(BIN)/python benchmarks/run_all.py

# What benchmarks/gpu_checks.sh needs on a lent GPU machine (wheels in .whl/, OpenCV's reference in .devkit/).
device-kit: install
	$(BIN)/python benchmarks/device_kit.py

clean:
	rm -rf $(DEMO_DIR) .pytest_cache .ruff_cache
