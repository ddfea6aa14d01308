# syntax=docker/dockerfile:1.7
# Candor images (a Docker engine builds them; this repository validates the file with hadolint).
#
#   docker build -t candor:0.1.0 .                                  serving image, CPU (default target)
#   docker build -t candor:0.1.0-gpu --build-arg VARIANT=gpu .      serving image, onnxruntime-gpu on CUDA
#   docker build -t candor-train:0.1.0 --target train .             the training CLI (torch, CPU)
#
# The serving image holds the core dependencies and one onnxruntime extra (no torch, no compiler),
# runs as uid 10001, reads every setting from CANDOR_* variables and serves the artifacts mounted at
# /models, or the bundled default artifact when nothing is mounted there.

# Python 3.11 slim (Debian bookworm) and CUDA 13 + cuDNN 9 runtime (Ubuntu 24.04), pinned by tag and
# by the digest of each multi-architecture index.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d
ARG CUDA_IMAGE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04@sha256:14d94b039cb94bbd5da559f303b46bc4b0d5d6c24ab1a9d7b186e566ed3400dc
# cpu: onnxruntime on the Python image; gpu: onnxruntime-gpu on the CUDA image.
ARG VARIANT=cpu

# ---- interpreters ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS base-cpu

FROM ${CUDA_IMAGE} AS base-gpu
# Ubuntu 24.04's Python (3.12); the venv below is built and run on this same stage. Not pinned
# (DL3008): the -updates pocket keeps only its newest build, so a pinned version stops resolving.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*

# A stage chosen by VARIANT, not an image to pull (DL3006 cannot see through the variable).
# hadolint ignore=DL3006
FROM base-${VARIANT} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# ---- builder: /opt/venv with the core dependencies and the serving extra only ---------------------
FROM base AS builder
ARG VARIANT
WORKDIR /src
# Dependencies first, from the committed lock (every package pinned; `make lock` writes it): this
# layer changes only with the lock. cpu installs requirements/requirements-serve.txt, gpu requirements/requirements-gpu.txt
# (onnxruntime-gpu 1.31 is built for CUDA 13 and cuDNN 9: keep the lock in step with CUDA_IMAGE).
COPY requirements/requirements-serve.txt requirements/requirements-gpu.txt requirements/
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir \
        -r "requirements/requirements-$(if [ "${VARIANT}" = gpu ]; then echo gpu; else echo serve; fi).txt"
COPY pyproject.toml README.md ./
COPY calibration/ calibration/
COPY candor/ candor/
COPY service/ service/
COPY training/ training/
# The gRPC stubs (CANDOR_GRPC_PORT), generated from the committed .proto by grpcio-tools at the dev
# lock's pin, which is then removed: the runtime imports the generated modules with grpcio and
# protobuf only (service/grpc/stubs.py).
COPY requirements/requirements-dev.txt requirements/
RUN /opt/venv/bin/pip install --no-cache-dir --constraint requirements/requirements-dev.txt grpcio-tools \
    && /opt/venv/bin/python -m service.grpc.stubs \
    && /opt/venv/bin/pip uninstall --yes grpcio-tools
# The project alone: its dependencies and its build backend (setuptools) came from the lock.
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation . \
    && /opt/venv/bin/pip check
# The bundled default artifact, readable by the non-root user whatever the build context's modes.
COPY models/ /opt/candor/models/
RUN chmod -R u=rwX,go=rX /opt/candor/models

# ---- train: the training CLI (torch 2.13.0 CPU wheel from the PyTorch CPU index, onnx) ------------
FROM base-cpu AS train
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH \
    MPLCONFIGDIR=/tmp/matplotlib
# Fashion-MNIST's IDX files (/usr/share/datasets/fashion-mnist), as on the development machines.
RUN apt-get update \
    && apt-get install -y --no-install-recommends dataset-fashion-mnist=0.0~git20200523.55506a9-1 \
    && rm -rf /var/lib/apt/lists/*
# torch's CPU build first (PyPI's torch is the CUDA build); requirements/requirements-train.txt pins torch==2.13.0,
# which the CPU build satisfies, and every other package. Where PyTorch's index cannot be reached,
# TORCH_FIND_LINKS names a folder of wheels mounted into the build instead, e.g.
#   podman build -v /opt/wheels:/wheels:ro --build-arg TORCH_FIND_LINKS=/wheels --target train .
ARG TORCH_FIND_LINKS=
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --no-deps \
        ${TORCH_FIND_LINKS:+--no-index --find-links "${TORCH_FIND_LINKS}"} \
        --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0+cpu"
WORKDIR /opt/candor
COPY requirements/requirements-train.txt requirements/
RUN /opt/venv/bin/pip install --no-cache-dir -r requirements/requirements-train.txt
COPY pyproject.toml README.md ./
COPY calibration/ calibration/
COPY candor/ candor/
COPY service/ service/
COPY training/ training/
COPY scripts/make-default-model.sh scripts/
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation . \
    && groupadd --system --gid 10001 candor \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /opt/candor \
        --shell /usr/sbin/nologin candor \
    && mkdir -p runs models \
    && chown 10001:10001 runs models
USER 10001:10001
# Mount runs/ and models/ to keep what it writes, e.g.
#   docker run --rm -v "$PWD/runs:/opt/candor/runs" candor-train:0.1.0 train --epochs 1 --out runs/r1
ENTRYPOINT ["candor"]
CMD ["train", "--data", "fashion-mnist", "--epochs", "5", "--out", "runs/default"]

# ---- runtime: the serving image (the default target) ----------------------------------------------
FROM base AS runtime
ARG VARIANT
LABEL org.opencontainers.image.title="candor" \
      org.opencontainers.image.description="Calibrated probabilities for neural classifiers, with calibration monitoring" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0" \
      io.candor.variant="${VARIANT}"
RUN groupadd --system --gid 10001 candor \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/candor \
        --shell /usr/sbin/nologin candor \
    && mkdir -p /models /var/lib/candor \
    && chown 10001:10001 /var/lib/candor
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /opt/candor/models /opt/candor/models
COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/candor-entrypoint
# Every setting is a CANDOR_* variable (service/settings.py); these are the container defaults.
ENV PATH=/opt/venv/bin:$PATH \
    CANDOR_HOST=0.0.0.0 \
    CANDOR_PORT=8000 \
    CANDOR_MODELS_DIR=/models \
    CANDOR_STATE_DIR=/var/lib/candor \
    BUNDLED_MODELS_DIR=/opt/candor/models \
    MPLCONFIGDIR=/tmp/matplotlib
USER 10001:10001
WORKDIR /var/lib/candor
EXPOSE 8000
# Ready means 200 and {"ready": true} (at least one artifact loaded); urllib, so no curl in the image.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import json, os, urllib.request as r; u = 'http://127.0.0.1:%s/v2/health/ready' % os.environ.get('CANDOR_PORT', '8000'); raise SystemExit(0 if json.load(r.urlopen(u, timeout=4)).get('ready') else 1)"]
ENTRYPOINT ["candor-entrypoint"]
CMD ["candor", "serve"]
