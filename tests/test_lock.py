"""The install locks (requirements/requirements-*.txt) agree with pyproject.toml, carry nothing of this machine,
and are what the test environment was installed from."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from scripts.lock import CONSTRAINED_BY, TARGETS, clean_lock, inputs_digest, lock_file, recorded_digest

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = REPO / "pyproject.toml"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)==(\S+)$")
# What a lock line may be: a pin, an indented comment (pip-compile's "# via"), a comment, or blank.
LOCK_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*==[^\s+]+|\s*#.*|)$")


def pins(target: str) -> dict[str, str]:
    """name -> pinned version of one lock file."""
    found = (PIN.match(line) for line in lock_file(target).read_text().splitlines())
    return {canonicalize_name(m[1]): m[2] for m in found if m}


def direct_requirements(extras: tuple[str, ...]) -> list[Requirement]:
    """pyproject's core dependencies plus the named extras, self-references (candor[train]) expanded."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    optional: dict[str, list[str]] = project["optional-dependencies"]
    out = [Requirement(text) for text in project["dependencies"]]
    pending = list(extras)
    while pending:
        for req in map(Requirement, optional[pending.pop()]):
            if canonicalize_name(req.name) == "candor":
                pending.extend(req.extras)
            else:
                out.append(req)
    return [req for req in out if req.marker is None or req.marker.evaluate({"extra": ""})]


@pytest.mark.parametrize("target", list(TARGETS))
def test_lock_was_compiled_from_the_current_pyproject(target: str) -> None:
    recorded = recorded_digest(lock_file(target))
    assert recorded == inputs_digest(PYPROJECT, TARGETS[target]), (
        f"requirements/requirements-{target}.txt is stale: pyproject.toml's dependencies changed; run `make lock`"
    )


@pytest.mark.parametrize("target", list(TARGETS))
def test_every_direct_requirement_is_pinned_within_its_range(target: str) -> None:
    locked = pins(target)
    for req in direct_requirements(TARGETS[target]):
        name = canonicalize_name(req.name)
        assert name in locked, f"{req} is not in requirements/requirements-{target}.txt; run `make lock`"
        assert req.specifier.contains(Version(locked[name]), prereleases=True), (
            f"requirements/requirements-{target}.txt pins {name}=={locked[name]}, outside {req}; run `make lock`"
        )


@pytest.mark.parametrize("target", list(TARGETS))
def test_lock_is_portable(target: str) -> None:
    """Only exact public pins and comments: no path, URL, index, local version or editable line."""
    for number, line in enumerate(lock_file(target).read_text().splitlines(), 1):
        assert LOCK_LINE.match(line), f"requirements/requirements-{target}.txt:{number}: not a portable pin: {line!r}"
        assert not re.search(r"(/work/|/opt/|/root/|/home/|/tmp/|file:/)", line), (
            f"requirements-{target}.txt:{number}: {line!r}"
        )


def test_one_version_per_package_across_locks() -> None:
    """The other locks are compiled under dev's pins: `make test` after `make serve` moves nothing."""
    dev = pins(CONSTRAINED_BY)
    for target in TARGETS:
        for name, version in pins(target).items():
            assert dev.get(name, version) == version, f"{name}: {target} pins {version}, dev pins {dev[name]}"


def test_no_target_pulls_a_cuda_torch() -> None:
    for target in ("serve", "gpu"):
        assert "torch" not in pins(target), f"the {target} install must not need torch"
    for target in TARGETS:
        cuda = [name for name in pins(target) if name.startswith("nvidia-") or name == "triton"]
        assert not cuda, f"requirements/requirements-{target}.txt pulls CUDA packages {cuda}"
    assert pins("train")["torch"] == pins("dev")["torch"] == "2.13.0"


def test_clean_lock_drops_machine_specific_lines() -> None:
    raw = "candor @ file:///somewhere/candor\n    # via candor (pyproject.toml)\ntorch==2.13.0+cpu\n    # via candor\n"
    assert clean_lock(raw) == "torch==2.13.0\n    # via candor\n"


def test_this_environment_is_the_dev_lock() -> None:
    """Every distribution installed beside the tests is pinned in requirements/requirements-dev.txt at its version
    (torch's CPU build, 2.13.0+cpu, counts as 2.13.0)."""
    locked = pins("dev")
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in distributions()}
    installed.pop("candor", None)
    unlocked = sorted(set(installed) - set(locked))
    moved = {n: (v, locked[n]) for n, v in installed.items() if n in locked and Version(v).public != locked[n]}
    assert not unlocked, f"installed but not in requirements/requirements-dev.txt: {unlocked}"
    assert not moved, f"installed version differs from the lock (installed, locked): {moved}"
