#!/usr/bin/env bash
# Retrains the bundled default artifact models/fashion-mnist-cnn/1 from scratch on CPU.
# Deterministic split (seed 0); validation is carved from the training files; test is the official
# test set and is used only for the manifest's reference figures.
set -euo pipefail
BIN=${BIN:-.venv/bin}
RUN=${RUN:-runs/fashion-mnist-cnn-default}
rm -rf "$RUN"
"$BIN/candor" train --data fashion-mnist --model small-cnn --loss ce --epochs 5 --batch-size 128 \
    --lr 1e-3 --seed 0 --out "$RUN"
"$BIN/candor" calibrate "$RUN" --method best   # TS or FTS, whichever has the lower validation NLL
"$BIN/candor" export "$RUN" --name fashion-mnist-cnn --version 1 --models-dir models --force
"$BIN/candor" evaluate models/fashion-mnist-cnn/1 --split test --ci --out docs/evaluation/fashion-mnist-cnn-1
