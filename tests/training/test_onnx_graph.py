"""The calibration maps fused into ONNX equal calibration.maps, extreme logits included."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from calibration.manifest import CalibrationMap
from calibration.maps import focal_temperature_scale, softmax, temperature_scale
from candor.onnx_graph import append_calibration_map

K = 10


def identity_logits_graph(num_classes: int = K) -> onnx.ModelProto:
    """A 'classifier' whose logits are its input: lets the test choose any logits."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", num_classes])
    z = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", num_classes])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["logits"])], "g", [x], [z])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def run(model: onnx.ModelProto, z: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": z})[0].astype(np.float64)


def extreme_logits(batch: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(batch, K)) * rng.choice([0.1, 1, 10, 100, 1e4], size=(batch, 1))
    z[0] = 0.0  # all tied
    if batch > 2:
        z[1, :2] = 50.0  # two tied at the top
        z[2, 0] = np.inf  # an overflowed logit: the row takes the guard
    return z.astype(np.float32)


@pytest.mark.parametrize("batch", [1, 7, 64])
@pytest.mark.parametrize("gamma", [-1.0, -0.5, 0.5, 1.0, 3.0, 5.0])
@pytest.mark.parametrize("temperature", [0.01, 0.7, 3.0])
def test_focal_temperature_graph_matches_numpy(batch: int, gamma: float, temperature: float) -> None:
    z = extreme_logits(batch)
    graph = append_calibration_map(
        identity_logits_graph(), CalibrationMap(kind="focal_temperature", temperature=temperature, gamma=gamma)
    )
    got = run(graph, z)
    assert np.abs(got - focal_temperature_scale(z.astype(np.float64), temperature, gamma)).max() < 1e-5
    assert np.allclose(got.sum(axis=1), 1.0, atol=1e-5)


def test_overflow_guard_row_in_the_graph() -> None:
    z = extreme_logits(3)
    got = run(
        append_calibration_map(
            identity_logits_graph(), CalibrationMap(kind="focal_temperature", temperature=0.01, gamma=2.0)
        ),
        z,
    )
    assert got[2].argmax() == int(np.argmax(z[2])) and got[2].max() == pytest.approx(1 - 1e-5 + 1e-5 / K)


@pytest.mark.parametrize("batch", [1, 7, 64])
def test_temperature_and_plain_softmax_graphs(batch: int) -> None:
    z = np.random.default_rng(1).normal(scale=5, size=(batch, K)).astype(np.float32)
    ts = run(append_calibration_map(identity_logits_graph(), CalibrationMap(kind="temperature", temperature=1.7)), z)
    assert np.abs(ts - temperature_scale(z.astype(np.float64), 1.7)).max() < 1e-6
    plain = run(append_calibration_map(identity_logits_graph(), CalibrationMap(kind="none")), z)
    assert np.abs(plain - softmax(z.astype(np.float64))).max() < 1e-6


def test_logits_graph_must_have_one_2d_output() -> None:
    model = identity_logits_graph()
    model.graph.output.append(helper.make_tensor_value_info("extra", TensorProto.FLOAT, ["batch", K]))
    with pytest.raises(ValueError, match="one logits output"):
        append_calibration_map(model, CalibrationMap(kind="none"))
