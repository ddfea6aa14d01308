"""Podman for the container tests: the VM's settings, stand-in base images and build helpers.

No image registry is reachable here, so every base is made on this machine: a Debian root file
system from `debootstrap --variant=minbase` (cached as a tar keyed by the release, and as an image in
Podman's storage), then stand-ins built FROM it with Debian's packages (tests/containers/standins).
Builds and runs use `--network host`, so apt and pip reach the same registries as this machine; the
host's CA bundle is mounted over the container's at build time only (never copied into a layer).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STANDINS = Path(__file__).resolve().parent / "standins"
CONTAINERS_CONF = REPO / "deploy" / "podman" / "containers.conf"
RELEASE = "bookworm"
DEBIAN_IMAGE = f"localhost/candor-standin/debian:{RELEASE}"
PYTHON_IMAGE = f"localhost/candor-standin/python:3.11-{RELEASE}"
SERVING_IMAGE = "candor:0.1.0"  # what `make image` tags, and docker-compose.yml's image
TRAIN_IMAGE = "candor-train:0.1.0"
Report = dict[str, float | int | str]
HOST_CA = "/etc/ssl/certs/ca-certificates.crt"
# The stand-in's Debian pip reads the system bundle (Debian's certifi); mounted at build time only.
CA_MOUNT = f"{HOST_CA}:/etc/ssl/certs/ca-certificates.crt:ro"


def engine_env() -> dict[str, str]:
    """The environment of every podman call: this VM's containers.conf (runc, cgroupfs, no ulimits)."""
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF), "BUILDAH_FORMAT": "docker"}


def podman(*args: str | Path, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `podman ARGS`; with check, a non-zero exit fails the test with the command's output."""
    result = subprocess.run(
        ["podman", *map(str, args)], capture_output=True, text=True, timeout=timeout, env=engine_env(), check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"podman {' '.join(map(str, args))} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def require_podman() -> None:
    """Podman, runc and debootstrap come from scripts/system-deps.sh; missing ones fail (no skip)."""
    missing = [tool for tool in ("podman", "runc", "debootstrap", "podman-compose") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: `make test` installs them (scripts/system-deps.sh)")
    if os.geteuid() != 0:
        pytest.fail("the container tests run Podman as root (rootless Podman is not set up on these VMs)")


def image_exists(ref: str) -> bool:
    return podman("image", "exists", ref, check=False).returncode == 0


def image_size(ref: str) -> int:
    """Bytes of the image (all its layers), as `podman image inspect` reports."""
    return int(podman("image", "inspect", "--format", "{{.Size}}", ref).stdout.strip())


def debian_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt is configured with (deb822 `URIs:` or a one-line `deb URL bookworm`)."""
    for path in sorted(sources.glob("sources.list.d/*.sources")):
        for uri in re.findall(r"^URIs:\s*(\S+)", path.read_text(), flags=re.MULTILINE):
            if "security" not in uri:
                return str(uri)
    listing = sources / "sources.list"
    text = listing.read_text() if listing.exists() else ""
    match = re.search(rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{RELEASE}\s", text, flags=re.MULTILINE)
    if match is None:
        pytest.fail(f"no Debian mirror for {RELEASE} in {sources}")
    return match[1]


def cache_dir() -> Path:
    """Where the debootstrap tar is kept between runs (CANDOR_CONTAINER_CACHE, else ~/.cache)."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "candor" / "containers"
    path = Path(os.environ.get("CANDOR_CONTAINER_CACHE", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def debootstrap_tar(mirror: str) -> Path:
    """A minbase root file system of RELEASE as a tar, made once per release and mirror (~2 min)."""
    key = re.sub(r"[^A-Za-z0-9]+", "_", mirror).strip("_")
    tar = cache_dir() / f"debian-{RELEASE}-minbase-{key}.tar"
    if tar.exists():
        return tar
    with tempfile.TemporaryDirectory(dir=cache_dir()) as work:
        root = Path(work) / "root"
        run_checked(["debootstrap", "--variant=minbase", RELEASE, str(root), mirror], timeout=900)
        # As Debian's official images: no daemon starts inside a build, apt keeps no package files.
        (root / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")
        (root / "usr/sbin/policy-rc.d").chmod(0o755)
        shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
        (root / "var/cache/apt/archives/partial").mkdir(parents=True)
        partial = tar.with_suffix(".partial")
        run_checked(["tar", "-C", str(root), "-cf", str(partial), "."], timeout=300)
        partial.rename(tar)
    return tar


def run_checked(cmd: list[str], timeout: float) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")


def debian_base() -> str:
    """The Debian base image (imported from the cached debootstrap tar when Podman lacks it)."""
    if not image_exists(DEBIAN_IMAGE):
        tar = debootstrap_tar(debian_mirror())
        podman("import", "--change", 'CMD ["bash"]', tar, DEBIAN_IMAGE, timeout=300)
    return DEBIAN_IMAGE


def build_standin(name: str, tag: str) -> str:
    """Build tests/containers/standins/NAME.Containerfile FROM the Debian base as TAG (layers cached)."""
    podman(
        "build",
        "--network",
        "host",
        "--build-arg",
        f"DEBIAN_IMAGE={debian_base()}",
        "-f",
        STANDINS / f"{name}.Containerfile",
        "-t",
        tag,
        STANDINS,
        timeout=900,
    )
    return tag


def make_image(target: str, *build_flags: str, timeout: float = 900) -> None:
    """`make TARGET` with Podman and a stand-in Python base (the Makefile's own recipe)."""
    flags = ["--network host", f"-v {CA_MOUNT}", f"--build-arg PYTHON_IMAGE={PYTHON_IMAGE}", *build_flags]
    cmd = ["make", "--no-print-directory", target, "CONTAINER_ENGINE=podman", f"IMAGE_BUILD_FLAGS={' '.join(flags)}"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=engine_env())
    if result.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} exited {result.returncode}:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}")


@contextmanager
def timed(report: Report, key: str) -> Iterator[None]:
    """Record the seconds the block took under report[key]."""
    start = time.monotonic()
    yield
    report[key] = round(time.monotonic() - start, 1)
