"""The manifest: round trip, committed JSON Schema kept current, errors naming file and field."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

import pytest

from calibration.errors import ManifestError
from calibration.manifest import (
    MANIFEST_FILE,
    Manifest,
    load_manifest,
    manifest_digest,
    manifest_json_schema,
    verify_artifact,
    write_manifest,
)

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / "models" / "manifest.schema.json"
BUNDLED = REPO / "models" / "fashion-mnist-cnn" / "1"


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
    target = tmp_path / "artifact"
    shutil.copytree(source, target)
    return target


def _reseal(directory: Path, edit) -> None:
    """Edit the manifest and update its manifest_sha256, as a writer of the models dir could."""

    def edit_and_seal(raw: dict) -> None:
        edit(raw)
        raw["manifest_sha256"] = manifest_digest(raw)

    _rewrite(directory, edit_and_seal)


def _swap_first_classes(raw: dict) -> None:
    raw["classes"][0], raw["classes"][1] = raw["classes"][1], raw["classes"][0]


@pytest.mark.parametrize(
    "edit",
    [
        _swap_first_classes,
        lambda m: m["preprocessing"].update(scale=1.0),
        lambda m: m["preprocessing"].update(input_range=[-1e9, 1e9]),
        lambda m: m["calibration"].update(temperature=m["calibration"]["temperature"] * 2),
        lambda m: m.update(manifest_sha256="0" * 64),
    ],
    ids=["swap-classes", "scale", "input-range", "temperature", "digest"],
)
def test_a_manifest_edited_after_export_is_refused(digits_artifact, tmp_path: Path, edit) -> None:
    copy = _copy_artifact(digits_artifact.artifact_dir, tmp_path)
    _rewrite(copy, edit)
    with pytest.raises(ManifestError) as info:
        verify_artifact(copy)
    assert info.value.field == "manifest_sha256" and str(copy / MANIFEST_FILE) in str(info.value)


def test_the_digest_ignores_formatting_and_key_order(digits_artifact, tmp_path: Path) -> None:
    copy = _copy_artifact(digits_artifact.artifact_dir, tmp_path)
    raw = json.loads((copy / MANIFEST_FILE).read_text())
    (copy / MANIFEST_FILE).write_text(json.dumps(dict(reversed(list(raw.items())))))
    assert verify_artifact(copy) == load_manifest(digits_artifact.artifact_dir)


def test_an_unsealed_manifest_is_served_with_a_warning(
    digits_artifact, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Artifacts exported before manifest_sha256 existed keep loading; the log says how to seal."""
    copy = _copy_artifact(digits_artifact.artifact_dir, tmp_path)
    _rewrite(copy, lambda m: m.pop("manifest_sha256"))
    with caplog.at_level(logging.WARNING, logger="candor.manifest"):
        manifest = verify_artifact(copy)
    assert manifest.manifest_sha256 is None
    assert any("manifest_sha256" in r.getMessage() and "re-export" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "onnx_file",
    ["../outside.onnx", "../../outside/x.onnx", "sub/model.onnx", "ABSOLUTE", "model.onnx\n", ".onnx", "model.txt"],
)
def test_onnx_file_is_a_plain_name_in_the_version_directory(digits_artifact, tmp_path: Path, onnx_file: str) -> None:
    copy = _copy_artifact(digits_artifact.artifact_dir, tmp_path)
    outside = tmp_path / "outside.onnx"
    shutil.copy(copy / "model.onnx", outside)
    value = str(outside) if onnx_file == "ABSOLUTE" else onnx_file
    _reseal(copy, lambda m: m.update(onnx_file=value))
    with pytest.raises(ManifestError) as info:
        verify_artifact(copy)
    assert info.value.field == "onnx_file"


@pytest.mark.parametrize("target", ["model.onnx", MANIFEST_FILE])
def test_symlinks_are_refused_even_to_identical_bytes(digits_artifact, tmp_path: Path, target: str) -> None:
    copy = _copy_artifact(digits_artifact.artifact_dir, tmp_path)
    outside = tmp_path / f"outside-{target}"
    (copy / target).rename(outside)
    (copy / target).symlink_to(outside)
    with pytest.raises(ManifestError, match="symlink") as info:
        verify_artifact(copy)
    assert info.value.field == ("onnx_file" if target == "model.onnx" else "-")


def test_an_absolute_onnx_file_is_no_oracle_for_the_digest_of_other_files(digits_artifact, tmp_path: Path) -> None:
    """Pointing onnx_file at any readable file must not reveal that file's sha256."""
    copy = _copy_artifact(digits_artifact.artifact_dir, tmp_path)
    secret = tmp_path / "secret.onnx"
    secret.write_bytes(b"not part of any artifact")
    _reseal(copy, lambda m: m.update(onnx_file=str(secret)))
    with pytest.raises(ManifestError) as info:
        verify_artifact(copy)
    assert hashlib.sha256(secret.read_bytes()).hexdigest() not in str(info.value)
    assert "not part of any artifact" not in str(info.value)


def test_a_tampered_onnx_error_does_not_echo_its_digest(digits_artifact, tmp_path: Path) -> None:
    copy = _copy_artifact(digits_artifact.artifact_dir, tmp_path)
    (copy / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(ManifestError) as info:
        verify_artifact(copy)
    assert info.value.field == "onnx_sha256" and hashlib.sha256(b"tampered").hexdigest() not in str(info.value)


def test_the_bundled_artifact_is_sealed() -> None:
    raw = json.loads((BUNDLED / MANIFEST_FILE).read_text())
    assert raw["manifest_sha256"] == manifest_digest(raw)
    assert verify_artifact(BUNDLED).manifest_sha256 == raw["manifest_sha256"]


def test_every_export_seals_its_manifest(digits_artifact) -> None:
    """training's publish_artifact writes through write_manifest, which sets manifest_sha256."""
    raw = json.loads((digits_artifact.artifact_dir / MANIFEST_FILE).read_text())
    assert raw["manifest_sha256"] == manifest_digest(raw)
