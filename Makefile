# Candor: every target creates .venv on first use and installs only what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
# Every install comes from a committed lock (requirements/requirements-<target>.txt: every package pinned with ==,
# written by `make lock`), then the project itself without dependencies. torch==2.13.0 is the CPU
# wheel that the machine's pip configuration finds on disk (find-links); see README "Installs".
PIP    := $(BIN)/python -m pip install -q --disable-pip-version-check
# The project itself: its dependencies came from the lock, its build backend (setuptools) too.
PIP_PROJECT := $(PIP) --no-deps --no-build-isolation -e .

.PHONY: serve test model lint bench lock clean image image-gpu image-train stubs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Serving needs no torch: core + onnxruntime (CPU). For CUDA: requirements/requirements-gpu.txt in its own venv.
$(VENV)/.serve: requirements/requirements-serve.txt pyproject.toml | $(BIN)/python
	$(PIP) -r requirements/requirements-serve.txt
	$(PIP_PROJECT)
	touch $@

# Training: core + cpu + train (torch 2.13.0, CPU).
$(VENV)/.train: requirements/requirements-train.txt pyproject.toml | $(BIN)/python
	$(PIP) -r requirements/requirements-train.txt
	$(PIP_PROJECT)
	touch $@ $(VENV)/.serve

# dev is a superset of serve and train, compiled under the same pins.
$(VENV)/.dev: requirements/requirements-dev.txt pyproject.toml | $(BIN)/python
	$(PIP) -r requirements/requirements-dev.txt
	$(PIP_PROJECT)
	touch $@ $(VENV)/.serve $(VENV)/.train

# The gRPC stubs, generated from the committed .proto (service/grpc/stubs.py, git-ignored); grpcio-tools
# is a dev dependency, installed at the dev lock's pin where only the serving lock is.
STUBS := service/grpc/generated/PROTO_SHA256
$(STUBS): service/grpc/proto/open_inference_grpc.proto | $(VENV)/.serve
	$(BIN)/python -c 'import grpc_tools' 2>/dev/null || $(PIP) --constraint requirements/requirements-dev.txt grpcio-tools
	$(BIN)/python -m service.grpc.stubs

stubs: $(STUBS)

serve: $(VENV)/.serve $(STUBS)
	$(BIN)/candor serve --host $(HOST) --port $(PORT)

# Lint first (seconds), then the suite.
test: $(VENV)/.dev $(STUBS)
	bash scripts/system-deps.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

# Retrains the bundled default artifact from scratch on CPU (a few minutes).
model: $(VENV)/.train
	bash scripts/system-deps.sh
	bash scripts/make-default-model.sh

# Benchmarks (not tests): serving ratios vs raw ONNX Runtime / bare Starlette, then 60 s of 10x overload.
bench: $(VENV)/.dev
	bash scripts/bench-deps.sh
	$(BIN)/python -m bench.serve --seconds 15
	$(BIN)/python -m bench.overload --seconds 60

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Re-resolve requirements/requirements-*.txt after a change to pyproject.toml (pins kept where they still fit);
# `make lock UPGRADE=1` moves every pin to the newest release.
lock: $(VENV)/.dev
	$(BIN)/python scripts/lock.py $(if $(UPGRADE),--upgrade)

# Container images (README "Deployment"): docker when its engine answers, else podman, else docker;
# choose with CONTAINER_ENGINE=podman. IMAGE_BUILD_FLAGS passes anything else to the build, e.g. a stand-in base:
#   make image CONTAINER_ENGINE=podman IMAGE_BUILD_FLAGS="--network host --build-arg PYTHON_IMAGE=..."
# BUILDAH_FORMAT=docker: Podman keeps HEALTHCHECK only in Docker's image format (Docker ignores it).
CONTAINER_ENGINE  ?= $(shell docker info >/dev/null 2>&1 && echo docker || { command -v podman >/dev/null && echo podman; } || echo docker)
IMAGE_BUILD_FLAGS ?=
IMAGE_TAG         ?= 0.1.0
IMAGE_BUILD       := BUILDAH_FORMAT=docker $(CONTAINER_ENGINE) build $(IMAGE_BUILD_FLAGS)

# VARIANT is passed although cpu is the Dockerfile's default: buildah before 1.29 (Podman 4.3, Debian
# bookworm) resolves `FROM base-${VARIANT}` to a stage only when the argument is given.
image:
	$(IMAGE_BUILD) -t candor:$(IMAGE_TAG) --build-arg VARIANT=cpu .

image-gpu:
	$(IMAGE_BUILD) -t candor:$(IMAGE_TAG)-gpu --build-arg VARIANT=gpu .

image-train:
	$(IMAGE_BUILD) -t candor-train:$(IMAGE_TAG) --target train .

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
