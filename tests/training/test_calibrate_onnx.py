"""calibrate-onnx: a classifier from another framework (scikit-learn weights in a hand-built ONNX
graph) becomes a Candor artifact, without torch, and is served with the fitted map."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from calibration.manifest import verify_artifact
from calibration.maps import focal_temperature_scale
from service.inference.engine import load_engine
from training.artifacts.calibrate_onnx import calibrate_onnx
from training.errors import TrainingError

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def foreign_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, LogisticRegression]:
    """A logistic regression on digits written as ONNX (MatMul + Add -> logits) and val/test npz."""
    root = tmp_path_factory.mktemp("foreign")
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    clf = LogisticRegression(C=50.0, max_iter=2000).fit(x[:900], y[:900])  # over-confident on purpose
    w = numpy_helper.from_array(clf.coef_.T.astype(np.float32), "W")
    b = numpy_helper.from_array(clf.intercept_.astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["scores"])],
        "logreg",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 10])],
        [w, b],
    )
    model_path = root / "logreg.onnx"
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model_path))
    np.savez(root / "val.npz", x=x[900:1350], y=y[900:1350], classes=np.array([f"digit-{d}" for d in range(10)]))
    np.savez(root / "test.npz", x=x[1350:], y=y[1350:])
    return model_path, root / "val.npz", root / "test.npz", clf


def test_foreign_model_becomes_a_served_artifact(foreign_model, tmp_path: Path) -> None:
    model_path, val, test, clf = foreign_model
    target = calibrate_onnx(model_path, val, "fts", "logreg", "1", tmp_path, test_path=test)
    manifest = verify_artifact(target)
    assert manifest.calibration.kind == "focal_temperature" and manifest.reference.split == "test"
    assert manifest.classes[3] == "digit-3" and manifest.reference.n == 1797 - 1350
    assert manifest.reference.nll < manifest.reference_uncalibrated.nll  # the fit helps held-out NLL
    engine = load_engine(target)
    x = np.load(test)["x"][:7]
    logits = clf.decision_function(x).astype(np.float64)
    expected = focal_temperature_scale(logits, manifest.calibration.temperature, manifest.calibration.gamma)
    served = engine.predict(engine.preprocess(x.astype(np.float64), "instances"))
    assert np.abs(served - expected).max() < 1e-5


def test_without_test_file_the_reference_uses_the_unseen_half(foreign_model, tmp_path: Path) -> None:
    model_path, val, _, _ = foreign_model
    manifest = verify_artifact(calibrate_onnx(model_path, val, "ts", "logreg", "2", tmp_path))
    assert manifest.reference.split == "validation"
    assert manifest.reference.n + manifest.training.validation_size == 450


def test_cli_runs_without_importing_torch(foreign_model, tmp_path: Path) -> None:
    model_path, val, test, _ = foreign_model
    code = (
        "import sys; from candor.cli import main; "
        f"rc = main(['calibrate-onnx', {str(model_path)!r}, '--val', {str(val)!r}, '--test', {str(test)!r}, "
        f"'--name', 'logreg', '--version', '3', '--models-dir', {str(tmp_path)!r}]); "
        "assert rc == 0; assert 'torch' not in sys.modules, 'torch was imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    verify_artifact(tmp_path / "logreg" / "3")


def test_bad_inputs_name_the_file(foreign_model, tmp_path: Path) -> None:
    model_path, val, _, _ = foreign_model
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 64), np.float32))
    with pytest.raises(TrainingError, match="bad.npz: missing array"):
        calibrate_onnx(model_path, tmp_path / "bad.npz", "ts", "m", "1", tmp_path)
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(TrainingError, match="junk.onnx"):
        calibrate_onnx(tmp_path / "junk.onnx", val, "ts", "m", "1", tmp_path)
