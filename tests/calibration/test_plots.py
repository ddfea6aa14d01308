"""plot_reliability: the same diagram from per-bin sums or from raw arrays; a real PNG out."""

from __future__ import annotations

import io

import matplotlib.image
import numpy as np

from calibration.binning import BinStatistics
from calibration.plots import figure_png, plot_reliability


def _stream(seed: int, n: int = 500) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.1, 1.0, n)
    return conf, (rng.uniform(size=n) < conf * 0.9).astype(np.float64)


def test_arrays_and_bin_statistics_give_the_same_diagram() -> None:
    conf, correct = _stream(0)
    stats = BinStatistics()
    stats.update(conf, correct)
    from_arrays, from_stats = plot_reliability((conf, correct)), plot_reliability(stats)
    assert from_arrays.get_suptitle() == from_stats.get_suptitle()
    assert f"ECE {stats.compute_ece():.4f}, N = 500" in from_stats.get_suptitle()
    top, bottom = from_stats.axes
    heights = [bar.get_height() for bar in bottom.patches]
    assert np.allclose(heights, stats.counts / 500)
    assert len(top.patches) == 2 * int((stats.counts > 0).sum())  # accuracy and gap per bin


def test_reference_is_drawn_and_empty_input_still_renders() -> None:
    reference = BinStatistics()
    reference.update(*_stream(1))
    with_reference = plot_reliability(_stream(2), reference, title="m v1")
    assert any(line.get_label() == "reference" for line in with_reference.axes[0].lines)
    assert with_reference.get_suptitle().startswith("m v1\n")
    empty = plot_reliability(BinStatistics())
    assert "no labels yet" in empty.get_suptitle()
    png = figure_png(empty)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert matplotlib.image.imread(io.BytesIO(png), format="png").shape[:2] == (600, 500)
