"""MAPS: every post-hoc calibration map, by manifest kind (like training.losses.LOSSES).

Each entry (candor/maps/family.py) carries the map's numpy ``apply``, its ``fit`` on validation
logits, its fused ONNX ``nodes`` and a ``describe`` line; export, calibrate-onnx, the parity gate,
``--method`` and ``candor evaluate`` all read this table. A new map: its module here, one line
below, its kind in calibration.manifest.CalibrationMap.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from calibration.errors import CalibrationError
from calibration.manifest import CalibrationMap
from candor.maps.family import Fit, MapFamily
from candor.maps.focal import FOCAL_TEMPERATURE
from candor.maps.softmax import NONE, TEMPERATURE
from candor.maps.vector import VECTOR

MAPS: dict[str, MapFamily] = {family.kind: family for family in (NONE, TEMPERATURE, FOCAL_TEMPERATURE, VECTOR)}
FITTED: dict[str, MapFamily] = {f.method: f for f in MAPS.values() if f.method is not None and f.fit}


def family_of(cmap: CalibrationMap) -> MapFamily:
    """The registry entry of a map (its kind is one the manifest accepts)."""
    return MAPS[cmap.kind]


def apply_map(logits: np.ndarray, cmap: CalibrationMap) -> np.ndarray:
    """The calibrated probabilities of ``cmap`` on logits, numpy float64."""
    return family_of(cmap).apply(logits, cmap)


def describe_map(cmap: CalibrationMap) -> str:
    """One line naming the map and its parameters, e.g. 'temperature scaling, T = 0.9400 (...)'."""
    return family_of(cmap).describe(cmap)


def fit_function(method: str) -> Callable[[np.ndarray, np.ndarray], Fit]:
    """The fit of ``--method method`` (ts, fts, vs, ...; best: FTS, compared with TS by the caller)."""
    family = FITTED.get("fts" if method == "best" else method)
    if family is None or family.fit is None:
        raise CalibrationError(f"--method {method!r}: choose one of {', '.join([*FITTED, 'best'])}")
    return family.fit
