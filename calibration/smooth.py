"""Kernel-smoothed calibration errors on top-label pairs (confidence c_i, correctness a_i).

- smECE (Blasiok & Nakkiran 2023, "Smooth ECE: principled reliability diagrams via kernel
  smoothing"): smECE_s = integral over t in [0, 1] of |sum_i K_s(t, c_i) (c_i - a_i)| / n dt, with
  K_s the Gaussian kernel reflected at 0 and 1; the bandwidth s* is the fixed point smECE_s* = s*.
- SECE, METHODS section 4 reading 1 (OUR RECONSTRUCTION: the paper's formula is not public):
  Gaussian soft membership of c_i to M bin centres, normalised over the bins, then the binned
  |accuracy - confidence| weighted by the soft bin masses. It tends to ECE as the bandwidth -> 0.

smECE is computed on a grid: the residuals are deposited on 2^14 + 1 nodes with linear
(cloud-in-cell) weights in one O(n) pass; each bandwidth is then one FFT convolution of the grid,
so the fixed-point search costs O(n + steps * G log G) whatever n is.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from calibration.errors import MetricInputError

FloatArray = NDArray[np.float64]

GRID_INTERVALS = 1 << 14
MIN_BANDWIDTH = 1e-3  # relplot's eps: the fixed-point search does not go below it
BISECTION_STEPS = 10  # relplot's refine: the bandwidth is known to 2^-10
_SECE_CHUNK = 1 << 16


def check_bandwidth(bandwidth: float) -> float:
    """A finite bandwidth > 0, as float."""
    value = float(bandwidth)
    if not (np.isfinite(value) and value > 0):
        raise MetricInputError(f"bandwidth must be finite and > 0, got {bandwidth}")
    return value


def deposit_on_grid(conf: FloatArray, weights: FloatArray, intervals: int = GRID_INTERVALS) -> FloatArray:
    """Linear deposit of w_i at c_i on nodes t_j = j / L: node j gets sum_i w_i hat_j(c_i)."""
    pos = conf * intervals  # exact: L is a power of two
    left = np.minimum(pos.astype(np.intp), intervals - 1)
    right_share = pos - left
    grid = np.bincount(left, weights * (1.0 - right_share), intervals + 1).astype(np.float64)
    grid[1:] += np.bincount(left, weights=weights * right_share, minlength=intervals)[:intervals]
    return grid


def reflect_to_circle(grid: FloatArray) -> FloatArray:
    """Even extension of node values on [0, 1] to a circle of period 2 (length 2L).

    End nodes carry half a trapezoid cell, so their deposits count twice as density; the Gaussian
    on this circle is exactly the kernel reflected at 0 and 1 (all images c + 2k and -c + 2k).
    """
    density = grid.copy()
    density[[0, -1]] *= 2.0
    return np.concatenate([density, density[-2:0:-1]])


def gaussian_on_circle(spectrum: NDArray[np.complex128], bandwidth: float, intervals: int) -> FloatArray:
    """Node values t_j = j / L' (j = 0..L') of the circle signal convolved with a Gaussian of std s.

    The Gaussian's Fourier multiplier exp(-(pi f s)^2 / 2) on the period-2 circle leaves nothing
    above f ~ 10 / s, so the band-limited result is sampled exactly on a coarser grid of L'
    intervals (numpy's 1/n in irfft makes the node sums independent of L').
    """
    wavenumber = np.pi * np.arange(intervals + 1)
    damped = spectrum[: intervals + 1] * np.exp(-0.5 * (wavenumber * bandwidth) ** 2)
    return np.fft.irfft(damped, n=2 * intervals)[: intervals + 1]


def output_intervals(bandwidth: float, finest: int) -> int:
    """Output grid: a power of two with >= 32 nodes per bandwidth, at most `finest` intervals."""
    return int(min(finest, 2 ** np.ceil(np.log2(32.0 / bandwidth))))


class SmoothEce:
    """smECE_s for one data set at any bandwidth s, from one grid deposit of the residuals."""

    def __init__(self, conf: FloatArray, correct: FloatArray, intervals: int = GRID_INTERVALS) -> None:
        self.n = conf.shape[0]
        self.intervals = intervals
        residual = deposit_on_grid(conf, conf - correct, intervals)
        self.spectrum = np.fft.rfft(reflect_to_circle(residual))

    def at(self, bandwidth: float) -> float:
        """integral_0^1 |sum_i K_s(t, c_i)(c_i - a_i)| dt / n, trapezoid rule on the grid."""
        nodes = np.abs(gaussian_on_circle(self.spectrum, bandwidth, output_intervals(bandwidth, self.intervals)))
        return float((nodes.sum() - 0.5 * (nodes[0] + nodes[-1])) / self.n)


def fixed_point_bandwidth(smece_at: Callable[[float], float]) -> float:
    """Bandwidth s* with smECE_s* = s*, by bisection on [0, 1] exactly as relplot.smECE does.

    smECE_s - s is decreasing; 10 halvings keep the upper end of the bracket (where s >= smECE_s),
    and bandwidths below 1e-3 count as "still above" so the search stops there.
    """

    def too_small(s: float) -> bool:
        return s < MIN_BANDWIDTH or s < smece_at(s)

    if too_small(1.0):
        return 1.0
    low, high = 0.0, 1.0
    for _ in range(BISECTION_STEPS):
        mid = (low + high) / 2
        if too_small(mid):
            low = mid
        else:
            high = mid
    return high


def smooth_ece_top_label(conf: FloatArray, correct: FloatArray, bandwidth: float | None = None) -> float:
    """smECE at the given bandwidth, or at the fixed point s* (Blasiok & Nakkiran 2023)."""
    smece = SmoothEce(conf, correct)
    if bandwidth is not None:
        return smece.at(check_bandwidth(bandwidth))
    return smece.at(fixed_point_bandwidth(smece.at))


def soft_bin_membership(conf: FloatArray, n_bins: int, bandwidth: float) -> FloatArray:
    """o_im = exp(-(c_i - mu_m)^2 / 2 sigma^2), normalised over m; centres mu_m = (m + 1/2) / M."""
    centres = (np.arange(n_bins) + 0.5) / n_bins
    log_w = -0.5 * ((conf[:, None] - centres[None, :]) / bandwidth) ** 2
    weights = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    normalised: FloatArray = weights / weights.sum(axis=1, keepdims=True)
    return normalised


def sece_top_label(conf: FloatArray, correct: FloatArray, n_bins: int, bandwidth: float | None = None) -> float:
    """SECE = sum_m (sum_i o_im / n) |acc_m - conf_m| = (1/n) sum_m |sum_i o_im (a_i - c_i)|.

    acc_m, conf_m are the o-weighted means in soft bin m; sigma defaults to 1 / (2M).
    """
    sigma = check_bandwidth(bandwidth) if bandwidth is not None else 1.0 / (2 * n_bins)
    gaps = np.zeros(n_bins)
    for start in range(0, conf.shape[0], _SECE_CHUNK):
        block = slice(start, start + _SECE_CHUNK)
        membership = soft_bin_membership(conf[block], n_bins, sigma)
        gaps += (conf[block] - correct[block]) @ membership
    return float(np.abs(gaps).sum() / conf.shape[0])
