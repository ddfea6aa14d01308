"""Artifact copies for tests: another version of a model, and the ways to break one."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from calibration.manifest import manifest_digest


def copy_version(src_models: Path, dst_models: Path, name: str, src: str, dst: str) -> Path:
    """Copy models/<name>/<src>/ to dst_models/<name>/<dst>/ with the manifest's version set to dst."""
    target = dst_models / name / dst
    shutil.copytree(src_models / name / src, target)
    edit_manifest(target, lambda m: m.update(version=dst))
    return target


def edit_manifest(directory: Path, change, reseal: bool = True) -> None:
    """Apply ``change(dict)`` to manifest.json in place; ``reseal``: update its manifest_sha256 as
    an export would (the code path of calibration.manifest), else leave the old digest."""
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    if reseal:
        manifest["manifest_sha256"] = manifest_digest(manifest)
    path.write_text(json.dumps(manifest, indent=2))


def break_sha256(directory: Path) -> str:
    """The ONNX file no longer hashes to the manifest's onnx_sha256."""
    onnx = directory / "model.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    return "onnx_sha256"


def break_schema(directory: Path) -> str:
    """The manifest fails validation (a field the schema forbids)."""
    edit_manifest(directory, lambda m: m.update(surprise=1))
    return "surprise"


def break_onnx(directory: Path) -> str:
    """A file ONNX Runtime cannot load, with a matching sha256 (so only the load fails)."""
    onnx = directory / "model.onnx"
    onnx.write_bytes(b"not an onnx model")
    digest = hashlib.sha256(onnx.read_bytes()).hexdigest()
    edit_manifest(directory, lambda m: m.update(onnx_sha256=digest))
    return "ONNX Runtime cannot load it"


def break_output_shape(directory: Path) -> str:
    """The manifest declares 11 classes; the graph still outputs 10."""

    def eleven(m: dict) -> None:
        m["classes"] = [*m["classes"], "extra"]
        m["output"]["shape"] = [None, len(m["classes"])]

    edit_manifest(directory, eleven)
    return "output.shape"


def break_manifest_digest(directory: Path) -> str:
    """The manifest alone edited (two class names swapped), its manifest_sha256 left as exported."""

    def swap(m: dict) -> None:
        m["classes"][0], m["classes"][1] = m["classes"][1], m["classes"][0]

    edit_manifest(directory, swap, reseal=False)
    return "manifest_sha256"


def break_onnx_path(directory: Path) -> str:
    """onnx_file points out of the version directory (resealed: only the path rule refuses it)."""
    outside = directory.parent / "outside.onnx"
    shutil.copy(directory / "model.onnx", outside)
    edit_manifest(directory, lambda m: m.update(onnx_file="../outside.onnx"))
    return "onnx_file"


def break_onnx_symlink(directory: Path) -> str:
    """model.onnx is a symlink to a copy outside the version directory (same bytes, same digest)."""
    outside = directory.parent / "outside.onnx"
    (directory / "model.onnx").rename(outside)
    (directory / "model.onnx").symlink_to(outside)
    return "symlink"


BREAKERS = {
    "sha256": break_sha256,
    "schema": break_schema,
    "onnx": break_onnx,
    "output_shape": break_output_shape,
    "manifest_digest": break_manifest_digest,
    "onnx_path": break_onnx_path,
    "onnx_symlink": break_onnx_symlink,
}
