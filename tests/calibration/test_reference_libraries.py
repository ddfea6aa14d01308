"""Cross-checks against torchmetrics 1.9, netcal 1.4, relplot 1.0, and where we differ on purpose.

Each "differs" test builds a small example, states both numbers, and says why in its docstring.
"""

from __future__ import annotations

import numpy as np
import pytest

from calibration import metrics as m
from calibration.smooth import SmoothEce, fixed_point_bandwidth

torch = pytest.importorskip("torch")
tm_classification = pytest.importorskip("torchmetrics.functional.classification")
netcal_metrics = pytest.importorskip("netcal.metrics")
relplot = pytest.importorskip("relplot")
relplot_kernels = pytest.importorskip("relplot.kernels")


def softmax_sample(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, size=(n, k))
    probs = np.exp(z - z.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    labels = (rng.uniform(size=(n, 1)) > np.cumsum(probs, axis=1)).sum(axis=1)
    return probs, np.minimum(labels, k - 1)  # calibrated: per-bin gaps of both signs


def tm_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int, norm: str) -> float:
    preds, target = torch.from_numpy(probs), torch.from_numpy(labels)
    return float(
        tm_classification.multiclass_calibration_error(
            preds, target, num_classes=probs.shape[1], n_bins=n_bins, norm=norm
        )
    )


def netcal_ece(probs: np.ndarray, labels: np.ndarray, n_bins: int, equal_width: bool = True) -> float:
    return float(netcal_metrics.ECE(bins=n_bins, equal_intervals=equal_width).measure(probs, labels))


# ---------------------------------------------------------------- torchmetrics
@pytest.mark.parametrize(("k", "seed", "n_bins"), [(3, 0, 15), (10, 1, 15), (5, 2, 10)])
def test_ece_and_mce_match_torchmetrics(k: int, seed: int, n_bins: int) -> None:
    """Random softmax rows: no confidence sits on an edge or at 1.0, so the bins agree.

    torchmetrics accumulates in float32, hence the 1e-6 tolerance.
    """
    probs, labels = softmax_sample(4000, k, seed)
    assert m.ece(probs, labels, n_bins) == pytest.approx(tm_calibration_error(probs, labels, n_bins, "l1"), abs=1e-6)
    assert m.mce(probs, labels, n_bins) == pytest.approx(tm_calibration_error(probs, labels, n_bins, "max"), abs=1e-6)


def test_torchmetrics_puts_confidence_one_in_a_hidden_extra_bin() -> None:
    """torch.bucketize(c, linspace(0, 1, M + 1), right=True) - 1 sends c = 1.0 to index M: an
    (M+1)-th bin. METHODS puts 1.0 in the last bin, with its neighbours (DESIGN: avoid this).

    c = 0.95 right, c = 1.0 wrong. Ours: one bin, |1.95 - 1| / 2 = 0.475.
    torchmetrics: (|0.95 - 1| + |1 - 0|) / 2 = 0.525.
    """
    probs, labels = np.array([[0.95, 0.05], [1.0, 0.0]]), np.array([0, 1])
    assert m.ece(probs, labels) == pytest.approx(0.475)
    assert tm_calibration_error(probs, labels, 15, "l1") == pytest.approx(0.525)


def test_torchmetrics_and_netcal_close_bins_on_the_left() -> None:
    """Both use lower <= c < upper (bucketize right=True; np.histogramdd); METHODS (the by-liu
    reference) uses lower < c <= upper. 4 bins; c = .5 wrong, .4 right, .6 right.
    Ours: (.25, .5] = {.5, .4}: |.9 - 1| = .1; (.5, .75] = {.6}: .4; ECE = .5 / 3.
    Theirs: [.25, .5) = {.4}: .6; [.5, .75) = {.5, .6}: |1.1 - 1| = .1; ECE = .7 / 3.
    """
    probs = np.array([[0.5, 0.3, 0.2], [0.4, 0.35, 0.25], [0.2, 0.2, 0.6]])
    labels = np.array([1, 0, 2])
    assert m.ece(probs, labels, n_bins=4) == pytest.approx(1 / 6)
    assert tm_calibration_error(probs, labels, 4, "l1") == pytest.approx(0.7 / 3, abs=1e-6)
    assert netcal_ece(probs, labels, 4) == pytest.approx(0.7 / 3)


def test_torchmetrics_casts_float64_to_float32() -> None:
    """c = 0.5 - 1e-12 is below the edge 0.5 in float64 (ours, netcal) but rounds to 0.5 in float32
    (torchmetrics), which then puts it in the upper bin. 4 bins, two such samples wrong, .6 right.
    Ours: (|1.0 - 0| + |.6 - 1|) / 3 = 1.4 / 3; torchmetrics: all in [.5, .75): |1.6 - 1| / 3 = .2.
    """
    c = 0.5 - 1e-12
    probs = np.array([[c, 0.3, 0.2 + 1e-12], [0.2, 0.2, 0.6], [0.3, c, 0.2 + 1e-12]])
    labels = np.array([1, 2, 0])
    assert m.ece(probs, labels, n_bins=4) == pytest.approx(1.4 / 3)
    assert netcal_ece(probs, labels, 4) == pytest.approx(1.4 / 3)
    assert tm_calibration_error(probs, labels, 4, "l1") == pytest.approx(0.2, abs=1e-6)


def test_torchmetrics_accumulates_in_float32() -> None:
    """torchmetrics sums confidences and hits per bin in float32 (scatter_add_ on .float()): with
    10^6 samples in one bin (c in [.68, .72], bin (2/3, 11/15]) the sums lose ~1e-3 of the mean.
    ECE is then |mean c - mean a| exactly: ours 1.7e-4, torchmetrics 2.4e-3. At 10^7 samples x 10
    classes (bench/metrics.py) it reads 7.8e-4 where the float64 value is 3.7e-4."""
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.68, 0.72, 1_000_000)
    labels = np.where(rng.uniform(size=conf.size) < conf, 0, 1)
    probs = np.stack([conf, 1 - conf], axis=1)
    exact = abs(conf.mean() - np.mean(labels == 0))
    assert m.ece(probs, labels) == pytest.approx(exact, rel=1e-9)
    assert abs(tm_calibration_error(probs, labels, 15, "l1") - exact) > 1e-3


# ---------------------------------------------------------------- netcal
@pytest.mark.parametrize(("k", "seed"), [(3, 3), (10, 4)])
def test_ece_and_mce_match_netcal(k: int, seed: int) -> None:
    probs, labels = softmax_sample(3000, k, seed)
    assert m.ece(probs, labels) == pytest.approx(netcal_ece(probs, labels, 15), abs=1e-12)
    mce = float(netcal_metrics.MCE(bins=15).measure(probs, labels))
    assert m.mce(probs, labels) == pytest.approx(mce, abs=1e-12)


def test_adaptive_ece_matches_netcal_equal_mass_when_n_is_a_multiple_of_m() -> None:
    """netcal's quantile edges sit at rank m(N-1)/M with [lower, upper); ours at ceil(mN/M) - 1
    with (lower, upper]. For distinct confidences and M | N both make bin m the ranks
    mN/M .. (m+1)N/M - 1."""
    probs, labels = softmax_sample(3000, 4, 5)
    assert m.adaptive_ece(probs, labels) == pytest.approx(netcal_ece(probs, labels, 15, equal_width=False), abs=1e-12)


def test_netcal_equal_mass_differs_when_m_does_not_divide_n() -> None:
    """N = 5, M = 2, sorted c = .6 .7 .8 .9 .95, correct 1 1 0 1 0. Ours: ranks {0,1,2} {3,4}
    (floor(2r/5)): (|2.1 - 2| + |1.85 - 1|) / 5 = .19. netcal: median edge .8 opens the upper bin:
    {.6, .7} {.8, .9, .95}: (|1.3 - 2| + |2.65 - 1|) / 5 = .47."""
    conf = np.array([0.6, 0.7, 0.8, 0.9, 0.95])
    probs = np.stack([conf, (1 - conf) / 2, (1 - conf) / 2], axis=1)
    labels = np.array([0, 0, 1, 0, 2])
    assert m.adaptive_ece(probs, labels, n_bins=2) == pytest.approx(0.19)
    assert netcal_ece(probs, labels, 2, equal_width=False) == pytest.approx(0.47)


def test_netcal_measures_the_positive_class_when_there_are_two_columns() -> None:
    """netcal treats (N, 2) input as binary: the reliability of p_1 against y == 1, not top-label.
    Ours (top-label, 5 bins): c = .75 .65 .55 .85, right 1 0 0 1 -> (.4 + .55 + .15) / 4 = .275.
    netcal: p_1 = .25 .65 .45 .85 vs y = 0 0 1 1 -> (.25 + .65 + .55 + .15) / 4 = .4."""
    probs = np.array([[0.75, 0.25], [0.35, 0.65], [0.55, 0.45], [0.15, 0.85]])
    labels = np.array([0, 0, 1, 1])
    assert m.ece(probs, labels, n_bins=5) == pytest.approx(0.275)
    assert netcal_ece(probs, labels, 5) == pytest.approx(0.4)


def test_netcal_refuses_multiclass_inputs_whose_labels_take_two_values() -> None:
    """With <= 2 distinct labels netcal assumes a binary task and rejects K > 2 columns."""
    probs, labels = softmax_sample(50, 3, 6)
    labels = labels % 2
    with pytest.raises(RuntimeError, match="binary"):
        netcal_ece(probs, labels, 15)
    assert 0.0 <= m.ece(probs, labels) <= 1.0


# ---------------------------------------------------------------- reference AdaECE
def reference_adaptive_ece(conf: np.ndarray, correct: np.ndarray, n_bins: int) -> float:
    """METHODS 1.3's transcription of the reference (Mukhoti / by-liu) AdaECE: edges by np.interp
    over the sorted confidences, membership lower < c <= upper, weights over all N."""
    n = conf.size
    edges = np.interp(np.linspace(0, n, n_bins + 1), np.arange(n), np.sort(conf))
    total = 0.0
    for lower, upper in zip(edges[:-1], edges[1:], strict=True):
        members = (conf > lower) & (conf <= upper)
        if members.any():
            total += members.mean() * abs(correct[members].mean() - conf[members].mean())
    return total


def test_reference_adaptive_ece_drops_the_minimum_sample() -> None:
    """Edge 0 equals min(c) and membership is c > lower, so the least confident sample is in no bin;
    with all confidences equal (METHODS 7 item 2) every sample is dropped and AdaECE reads 0."""
    conf, correct = np.full(10, 0.95), np.r_[np.ones(9), 0.0]
    assert reference_adaptive_ece(conf, correct, 15) == 0.0
    assert m.adaptive_ece(np.stack([conf, 1 - conf], 1), np.where(correct > 0, 0, 1)) == pytest.approx(0.05)
    distinct = np.linspace(0.5, 0.99, 30)
    right = np.r_[0.0, np.ones(29)]  # only the least confident sample is wrong
    probs, labels = np.stack([distinct, 1 - distinct], 1), np.where(right > 0, 0, 1)
    # reference: bins (s0, s2], (s2, s4], ..., (s28, s29]: s0 is nowhere, all others are right
    assert reference_adaptive_ece(distinct, right, 15) == pytest.approx(np.sum(1 - distinct[1:]) / 30)
    # ours: bins {s0, s1}, {s2, s3}, ...: the wrong s0 shares the first bin with s1
    ours = (abs(distinct[0] + distinct[1] - 1) + np.sum(1 - distinct[2:])) / 30
    assert m.adaptive_ece(probs, labels) == pytest.approx(ours)


# ---------------------------------------------------------------- relplot smECE
def interior_sample(n: int, seed: int, power: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.3, 0.97, n)
    return conf, (rng.uniform(size=n) < conf**power).astype(float)


@pytest.mark.parametrize(("seed", "power"), [(0, 1.0), (1, 1.0), (2, 1.3)])
def test_smooth_ece_matches_relplot(seed: int, power: float) -> None:
    """Same fixed point and the same bisection, so the same bandwidth; values agree to relplot's
    own discretisation error (10 grid nodes per bandwidth, linear interpolation: ~(dx/s)^2 / 8)."""
    conf, correct = interior_sample(3000, seed, power)
    value, width = relplot.smECE(conf, correct, return_width=True)
    smece = SmoothEce(conf, correct)
    assert fixed_point_bandwidth(smece.at) == width
    assert smece.at(width) == pytest.approx(value, rel=3e-3)
    for bandwidth in (0.005, 0.02, 0.1):
        assert smece.at(bandwidth) == pytest.approx(relplot.smECE_sigma(conf, correct, bandwidth), rel=3e-3)


@pytest.mark.parametrize("bandwidth", [0.01, 0.03, 0.1])
def test_relplot_kernel_on_a_finer_grid_agrees_tightly(bandwidth: float) -> None:
    """relplot's own reflected kernel, run on a 10x finer grid than its default, agrees to 5e-5."""
    conf, correct = interior_sample(3000, 0, 1.0)
    kernel = relplot_kernels.ReflectedGaussianKernel(bandwidth)
    t = np.linspace(0, 1, 10_001)
    residual = kernel.apply(conf, conf - correct, t, eval_points=10_000)
    density = kernel.apply(conf, np.ones_like(conf), t, eval_points=10_000)
    fine = np.abs(residual).sum() / density.sum()
    assert SmoothEce(conf, correct).at(bandwidth) == pytest.approx(fine, rel=5e-5)


def test_relplot_gives_half_weight_at_the_boundary() -> None:
    """relplot mirrors the grid without its end node, so a sample at c = 1 (or within the last grid
    cell) keeps only the half of its kernel inside [0, 1]. The residual here is one-signed, so the
    exact smECE is mean(c - a) at every bandwidth; relplot's denominator loses half of the 100
    samples at c = 1 and reads about sum(c - a) / 150 instead of / 200. Saturated softmax
    outputs (c = 1.0 exactly) hit this."""
    rng = np.random.default_rng(0)
    conf = np.r_[np.full(100, 1.0), rng.uniform(0.5, 0.9, 100)]
    correct = np.r_[np.ones(100), np.zeros(100)]
    exact = np.mean(conf - correct)
    for bandwidth in (0.01, 0.05):
        assert SmoothEce(conf, correct).at(bandwidth) == pytest.approx(exact, rel=1e-12)
        relplot_value = relplot.smECE_sigma(conf, correct, bandwidth)
        assert relplot_value == pytest.approx(exact * 200 / 150, rel=0.02)


def test_relplot_riemann_sum_misses_a_one_signed_residual() -> None:
    """All wrong: smECE_s = mean(c) exactly for every s. relplot sums 200 points with full weight
    at t = 0 and 1 (for s >= 0.05), which is off by ~1e-4 here; our trapezoid rule is exact."""
    conf = np.random.default_rng(1).uniform(0.2, 0.9, 5000)
    wrong = np.zeros(5000)
    assert SmoothEce(conf, wrong).at(0.2) == pytest.approx(conf.mean(), rel=1e-12)
    assert abs(relplot.smECE_sigma(conf, wrong, 0.2) - conf.mean()) > 5e-5
