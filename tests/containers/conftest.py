"""Session fixtures of the container tests: the stand-in bases and the images, built once.

Every duration and image size lands in one report, printed at the end of the session and written
to the cache directory (last-run.json), so the figures of docs/containers.md can be reproduced.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.containers.podman_tools import (
    PYTHON_IMAGE,
    SERVING_IMAGE,
    Report,
    build_standin,
    cache_dir,
    debian_base,
    image_size,
    make_image,
    require_podman,
    timed,
)


@pytest.fixture(scope="session")
def report() -> Iterator[Report]:
    """Seconds per step and bytes per image of this session's container work."""
    figures: Report = {}
    yield figures
    if figures:
        (cache_dir() / "last-run.json").write_text(json.dumps(figures, indent=2) + "\n")
        print("\ncontainer figures:", json.dumps(figures))


@pytest.fixture(scope="session")
def python_base(report: Report) -> str:
    """The python:3.11-slim stand-in (Debian's Python 3.11 on the debootstrap base)."""
    require_podman()
    with timed(report, "debian_base_s"):
        debian_base()
    with timed(report, "python_base_build_s"):
        return build_standin("python", PYTHON_IMAGE)


@pytest.fixture(scope="session")
def serving_image(python_base: str, report: Report) -> str:
    """`make image` with Podman from the stand-in base: candor:0.1.0, the CPU serving image."""
    with timed(report, "serving_image_build_s"):
        make_image("image")
    report["serving_image_bytes"] = image_size(SERVING_IMAGE)
    return SERVING_IMAGE
