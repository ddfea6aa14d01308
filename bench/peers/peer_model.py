"""The model every peer serves, as Candor serves it: copied beside each peer's server script, so it
imports only numpy and onnxruntime (no Candor package in a peer's venv).

Same artifact (model.onnx with the calibration map fused), same preprocessing read from the same
manifest.json: x_model = (x_raw * scale - mean_c) / std_c computed as x_raw * gain_c - offset_c in
float64, then float32 (calibration.preprocessing.Preprocessing.normalise), raw values checked
against input_range; one ONNX Runtime intra-op thread, no spinning (candor.onnx_run.session_options).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort


class PeerModel:
    """``predict(raw)``: raw 0..255 instances [N, C, H, W] (or [N, H, W] for one channel) -> FP32 [N, classes]."""

    def __init__(self, model_dir: str | Path, threads: int = 1) -> None:
        directory = Path(model_dir)
        manifest = json.loads((directory / "manifest.json").read_text())
        pre = manifest["preprocessing"]
        std = np.asarray(pre["std"], dtype=np.float64)
        channels = (1, -1, 1, 1)
        self.gain = (pre["scale"] / std).reshape(channels)
        self.offset = (np.asarray(pre["mean"], dtype=np.float64) / std).reshape(channels)
        self.low, self.high = (float(v) for v in pre["input_range"])
        self.shape = tuple(int(d) for d in manifest["input"]["shape"][1:])
        self.input_name = str(manifest["input"]["name"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        model = str(directory / manifest["onnx_file"])
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def preprocess(self, raw: Any) -> np.ndarray:
        """Shape and range check, then (x * scale - mean) / std as float32; ValueError if invalid."""
        x = np.asarray(raw, dtype=np.float64)
        if x.ndim == len(self.shape) and self.shape[0] == 1:
            x = x[:, None]
        if x.shape[1:] != self.shape:
            raise ValueError(f"each instance must have shape {list(self.shape)}, got {list(x.shape[1:])}")
        low, high = float(x.min()), float(x.max())
        if not (np.isfinite(low) and np.isfinite(high) and self.low <= low and high <= self.high):
            raise ValueError(f"values must be finite and within [{self.low:g}, {self.high:g}]")
        normalised: np.ndarray = (x * self.gain - self.offset).astype(np.float32)
        return normalised

    def predict(self, raw: Any) -> np.ndarray:
        """Calibrated probabilities, FP32 [N, classes]."""
        return np.asarray(self.session.run(None, {self.input_name: self.preprocess(raw)})[0], dtype=np.float32)
