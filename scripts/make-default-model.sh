#!/usr/bin/env bash
# Retrains the bundled default artifact models/fashion-mnist-cnn/1 from scratch on CPU.
# Deterministic split (seed 0); validation (checkpoint selection) and a 5,000-image calibration split
# (the post-hoc map) are carved from the training files; test is the official test set and is used
# only for the manifest's reference figures.
set -euo pipefail
BIN=${BIN:-.venv/bin}
RUN=${RUN:-runs/fashion-mnist-cnn-default}
MODELS_DIR=${MODELS_DIR:-models}   # a scratch directory measures the recipe without touching models/
EVAL_OUT=${EVAL_OUT:-docs/evaluation/fashion-mnist-cnn-1}
rm -rf "$RUN"
"$BIN/candor" train --data fashion-mnist --model small-cnn --loss ce --epochs 5 --batch-size 128 \
    --lr 1e-3 --seed 0 --calibration-size 5000 --out "$RUN"
"$BIN/candor" calibrate "$RUN" --method best   # none, TS or FTS: the lowest calibration-split NLL
"$BIN/candor" export "$RUN" --name fashion-mnist-cnn --version 1 --models-dir "$MODELS_DIR" --force
"$BIN/candor" evaluate "$MODELS_DIR/fashion-mnist-cnn/1" --split test --ci --out "$EVAL_OUT"
