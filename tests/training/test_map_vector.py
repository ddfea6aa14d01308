"""Vector scaling (Guo et al. 2017), added through the map registry only: its fit recovers a known
per-class map, its fused ONNX graph equals the numpy map, and calibrate-onnx serves it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import check_grad
from test_calibrate_onnx import foreign_model  # noqa: F401, F811  (the fixture)
from test_onnx_graph import K, extreme_logits, identity_logits_graph, run

from calibration.manifest import CalibrationMap, verify_artifact
from calibration.maps import softmax
from calibration.posthoc import checked_logits
from candor.map_fit import METHODS, fit_map
from candor.maps import MAPS, apply_map, describe_map
from candor.maps.vector import nll_and_gradient, vector_scale
from candor.onnx_graph import append_calibration_map
from service.inference.engine import load_engine
from training.artifacts.calibrate_onnx import calibrate_onnx

TRUE_W = np.linspace(0.4, 1.6, K)
TRUE_B = np.linspace(-0.5, 0.5, K)


def sampled(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits, and labels drawn from softmax(w * z + b) with a known w, b."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=3, size=(n, K))
    p = vector_scale(z, TRUE_W, TRUE_B)
    return z, (p.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)


def test_registry_offers_vector_scaling_as_a_method() -> None:
    assert MAPS["vector"].method == "vs" and "vs" in METHODS


def test_gradient_matches_finite_differences() -> None:
    z, y = sampled(200)
    params = np.concatenate([TRUE_W, TRUE_B]) + 0.1
    error = check_grad(lambda p: nll_and_gradient(p, z, y)[0], lambda p: nll_and_gradient(p, z, y)[1], params)
    assert error < 1e-5


def test_fit_recovers_the_per_class_map_and_beats_the_identity() -> None:
    z, y = sampled(20000)
    cmap, figures = fit_map(z, y, "vs")
    assert cmap.kind == "vector" and cmap.weights is not None and cmap.biases is not None
    np.testing.assert_allclose(cmap.weights, TRUE_W, atol=0.08)
    b = np.asarray(cmap.biases)
    np.testing.assert_allclose(b - b.mean(), TRUE_B - TRUE_B.mean(), atol=0.2)  # b is defined up to a shift
    at_truth, _ = nll_and_gradient(np.concatenate([TRUE_W, TRUE_B]), *checked_logits(z, y))
    assert figures["validation_nll_vs"] <= at_truth <= figures["validation_nll_before"]  # the MLE
    assert describe_map(cmap).startswith("vector scaling, w in [")


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_vector_graph_matches_numpy(batch: int) -> None:
    cmap = CalibrationMap(kind="vector", weights=TRUE_W.tolist(), biases=TRUE_B.tolist())
    z = np.nan_to_num(extreme_logits(batch), posinf=1e4) / 100  # finite, wide-ranging logits
    got = run(append_calibration_map(identity_logits_graph(), cmap), z)
    assert np.abs(got - apply_map(z.astype(np.float64), cmap)).max() < 1e-5


def test_manifest_refuses_vector_parameters_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match="vector scaling needs"):
        CalibrationMap(kind="vector", weights=[1.0, 2.0], biases=[0.0])
    with pytest.raises(ValueError, match="vector scaling only"):
        CalibrationMap(kind="temperature", weights=[1.0], biases=[0.0])
    assert "weights" not in CalibrationMap(kind="temperature").model_dump()


def test_calibrate_onnx_serves_vector_scaling(foreign_model, tmp_path: Path) -> None:  # noqa: F811
    model_path, val, test, clf = foreign_model
    target = calibrate_onnx(model_path, val, "vs", "logreg", "1", tmp_path, test_path=test)
    manifest = verify_artifact(target)
    cmap = manifest.calibration
    assert cmap.kind == "vector" and manifest.reference.split == "test"  # (20 parameters on 450 rows overfit)
    x = np.load(test)["x"][:7]
    expected = softmax(clf.decision_function(x) * np.asarray(cmap.weights) + np.asarray(cmap.biases))
    engine = load_engine(target)
    served = engine.predict(engine.preprocess(x.astype(np.float64), "instances"))
    np.testing.assert_allclose(served, expected, atol=1e-5)
