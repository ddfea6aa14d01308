# Candor: every target creates .venv on first use and installs only what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
# pip reads /opt/wheels (torch==2.13.0 CPU wheel) through the machine's pip config when present.
PIP    := $(BIN)/python -m pip install -q --disable-pip-version-check

.PHONY: serve test model lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Serving needs no torch: core + onnxruntime (CPU). Use `pip install .[gpu]` in a separate env for CUDA.
$(VENV)/.serve: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[cpu]'
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[cpu,train,dev]'
	touch $@ $(VENV)/.serve

serve: $(VENV)/.serve
	$(BIN)/candor serve --host $(HOST) --port $(PORT)

test: $(VENV)/.dev
	bash scripts/system-deps.sh
	$(BIN)/python -m pytest -q

# Retrains the bundled default artifact from scratch on CPU (a few minutes).
model: $(VENV)/.dev
	bash scripts/system-deps.sh
	bash scripts/make-default-model.sh

# Benchmarks (not tests): serving ratios vs raw ONNX Runtime / bare Starlette, then 60 s of 10x overload.
bench: $(VENV)/.dev
	bash scripts/bench-deps.sh
	$(BIN)/python -m bench.serve --seconds 15
	$(BIN)/python -m bench.overload --seconds 60

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/mypy calibration service

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
