"""The manifest's preprocessing, and applying it: raw instances -> the model's float32 input.

One definition for every side that runs an artifact (the service's engine, ``candor evaluate``),
so the figures measured offline are measured on exactly what the service feeds the graph.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import Annotated, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

from calibration.errors import InputError


class Preprocessing(BaseModel):
    """x_model = (x_raw * scale - mean[c]) / std[c], per channel c; raw values must lie in input_range."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scale: float = Field(gt=0, description="multiplier applied to raw values first (1/255 for uint8)")
    mean: list[float] = Field(min_length=1)
    std: list[Annotated[float, Field(gt=0)]] = Field(min_length=1)
    layout: Literal["NCHW"] = "NCHW"
    input_range: tuple[float, float] = Field(description="inclusive range of raw input values")

    @model_validator(mode="after")
    def _same_channels(self) -> Preprocessing:
        if len(self.mean) != len(self.std):
            raise ValueError("mean and std must have one value per channel")
        if self.input_range[0] >= self.input_range[1]:
            raise ValueError("input_range must be (low, high) with low < high")
        return self

    @cached_property
    def _gain_offset(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """gain_c = scale / std_c and offset_c = mean_c / std_c, per channel:
        (x * scale - mean_c) / std_c = x * gain_c - offset_c in two passes, not three."""
        std = np.asarray(self.std, dtype=np.float64)
        return self.scale / std, np.asarray(self.mean, dtype=np.float64) / std

    def normalise(self, raw: NDArray[np.float64], shape: tuple[int, ...], field: str) -> NDArray[np.float32]:
        """Check shape (C, H, W, ...) and range of raw instances, then (x * scale - mean_c) / std_c
        as float32. (N, H, W) is accepted for single-channel models. Raises InputError naming ``field``."""
        if raw.ndim == len(shape) and shape[0] == 1:
            raw = raw[:, None]
        if raw.ndim != len(shape) + 1 or raw.shape[1:] != shape:
            raise InputError(
                f"each instance must have shape {list(shape)}"
                + (f" or {list(shape[1:])}" if shape[0] == 1 else "")
                + f", got {list(raw.shape[1:])}",
                field=field,
            )
        check_finite_and_range(raw, self.input_range, field)
        gain, offset = self._gain_offset
        per_channel = (1, -1, *([1] * (len(shape) - 1)))
        return (raw * gain.reshape(per_channel) - offset.reshape(per_channel)).astype(np.float32)


def check_finite_and_range(raw: NDArray[np.float64], bounds: tuple[float, float], field: str) -> None:
    """Reject NaN / infinity and values outside the manifest's input range, naming the element.
    Two reductions decide (NaN propagates through min and max); the element is searched only then."""
    low, high = bounds
    smallest, largest = float(raw.min()), float(raw.max())
    if math.isfinite(smallest) and math.isfinite(largest) and low <= smallest and largest <= high:
        return
    bad = ~np.isfinite(raw)
    if bad.any():
        raise InputError("NaN and infinity are not allowed", field=element_path(field, bad))
    outside = (raw < low) | (raw > high)
    if outside.any():
        value = raw[tuple(np.argwhere(outside)[0])]
        raise InputError(
            f"value {value:g} is outside the input range [{low:g}, {high:g}]", field=element_path(field, outside)
        )


def element_path(field: str, mask: NDArray[np.bool_]) -> str:
    """'instances[i][j]...' of the first True element of a mask."""
    return field + "".join(f"[{int(i)}]" for i in np.argwhere(mask)[0])
