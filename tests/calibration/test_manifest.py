"""The manifest: round trip, committed JSON Schema kept current, errors naming file and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from calibration.errors import ManifestError
from calibration.manifest import (
    MANIFEST_FILE,
    Manifest,
    load_manifest,
    manifest_json_schema,
    verify_artifact,
    write_manifest,
)

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "models" / "manifest.schema.json"


def test_committed_schema_is_current() -> None:
    committed = json.loads(SCHEMA_FILE.read_text())
    assert committed == manifest_json_schema(), "run `candor schema` to regenerate models/manifest.schema.json"


def test_round_trip(digits_artifact, tmp_path: Path) -> None:
    original = load_manifest(digits_artifact.artifact_dir)
    write_manifest(original, tmp_path)
    assert load_manifest(tmp_path) == original
    assert Manifest.model_validate_json(original.model_dump_json()) == original


def test_manifest_is_frozen(digits_artifact) -> None:
    manifest = load_manifest(digits_artifact.artifact_dir)
    with pytest.raises(Exception, match="frozen"):
        manifest.name = "other"  # type: ignore[misc]


def _rewrite(directory: Path, edit) -> None:
    path = directory / MANIFEST_FILE
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw))


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda m: m.update(unexpected=1), "unexpected"),
        (lambda m: m.update(schema_version=99), "schema_version"),
        (lambda m: m["calibration"].update(temperature=-1.0), "calibration.temperature"),
        (lambda m: m.update(onnx_sha256="xyz"), "onnx_sha256"),
        (lambda m: m["reference"].update(ece=1.5), "reference.ece"),
        (lambda m: m.pop("classes"), "classes"),
    ],
)
def test_schema_errors_name_file_and_field(digits_artifact, tmp_path: Path, edit, field: str) -> None:
    copy = _copy_artifact(digits_artifact.artifact_dir, tmp_path)
    _rewrite(copy, edit)
    with pytest.raises(ManifestError) as info:
        load_manifest(copy)
    assert info.value.field == field
    assert str(copy / MANIFEST_FILE) in str(info.value)


def test_tampered_onnx_is_refused(digits_artifact, tmp_path: Path) -> None:
    copy = _copy_artifact(digits_artifact.artifact_dir, tmp_path)
    with (copy / "model.onnx").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ManifestError) as info:
        verify_artifact(copy)
    assert info.value.field == "onnx_sha256"


def test_missing_and_malformed_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="file not found"):
        load_manifest(tmp_path)
    (tmp_path / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(tmp_path)


def _copy_artifact(source: Path, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "artifact"
    shutil.copytree(source, target)
    return target
