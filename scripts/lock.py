"""Write the install locks in requirements/ from pyproject.toml (``make lock``); check them in tests.

One lock per install target, each pinning every direct and transitive dependency with ``==``:

    serve  core + cpu               (``make serve``, the CPU serving image)
    gpu    core + gpu               (the GPU serving image)
    train  core + cpu + train       (``make model``, the training image)
    dev    core + cpu + dev         (``make test``; dev includes train)

pip-compile (pip-tools) resolves with pip itself, so it sees what this machine's pip configuration
sees: torch==2.13.0 resolves to the CPU wheel on disk, not PyPI's CUDA build. Each lock's first line
records a digest of the pyproject inputs it was compiled from; tests/test_lock.py fails when
pyproject.toml changes and the locks are not refreshed.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCK_DIR = REPO / "requirements"
# dev first: the others are compiled under its pins, so one package has one version in every lock and
# `make test` after `make serve` upgrades nothing.
TARGETS: dict[str, tuple[str, ...]] = {
    "dev": ("cpu", "dev"),
    "train": ("cpu", "train"),
    "serve": ("cpu",),
    "gpu": ("gpu",),
}
CONSTRAINED_BY = "dev"
DIGEST_PREFIX = "# inputs-sha256: "


def lock_file(name: str) -> Path:
    """requirements/requirements-<name>.txt: the lock of one install target."""
    return LOCK_DIR / f"requirements-{name}.txt"


# pip-compile pins the local build it resolved (torch 2.13.0+cpu); the lock names the release, which
# the CPU wheel satisfies, so the lock carries nothing of this machine.
LOCAL_VERSION = re.compile(r"^([A-Za-z0-9_.-]+==[^+\s]+)\+[A-Za-z0-9.]+$")


def inputs_digest(pyproject: Path, extras: tuple[str, ...]) -> str:
    """sha256 of the requirements a target is compiled from: core dependencies and its extras."""
    project = tomllib.loads(pyproject.read_text())["project"]
    optional = project.get("optional-dependencies", {})
    inputs = {"requires-python": project.get("requires-python"), "dependencies": project["dependencies"]}
    inputs |= {f"extra:{extra}": optional[extra] for extra in extras}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def recorded_digest(lock: Path) -> str | None:
    """The digest a lock file was written for, or None when it has no such line."""
    first = lock.read_text().splitlines()[:1]
    return first[0].removeprefix(DIGEST_PREFIX) if first and first[0].startswith(DIGEST_PREFIX) else None


def clean_lock(text: str) -> str:
    """Drop the project's own line (a path of this machine) and local version labels."""
    out: list[str] = []
    skip_via = False
    for line in text.splitlines():
        if line.startswith("candor @ "):
            skip_via = True
            continue
        if skip_via and line.startswith("    #"):
            continue
        skip_via = False
        out.append(LOCAL_VERSION.sub(r"\1", line))
    return "\n".join(out) + "\n"


def compile_target(name: str, extras: tuple[str, ...], upgrade: bool) -> None:
    """Run pip-compile for one target from the repository root and write requirements/requirements-<name>.txt.

    Pins already in the file are kept unless ``upgrade`` (pip-compile's own rule), so a changed
    pyproject.toml moves only what it must."""
    out = lock_file(name)
    command = [sys.executable, "-m", "piptools", "compile", "--quiet", "--allow-unsafe", "--strip-extras"]
    command += ["--no-emit-find-links", "--no-emit-index-url", "--no-emit-trusted-host", "--newline=LF"]
    command += [f"--extra={extra}" for extra in extras]
    command += ["--all-build-deps"]  # setuptools, for `pip install --no-build-isolation` of the project
    command += [f"--constraint={lock_file(CONSTRAINED_BY).relative_to(REPO)}"] if name != CONSTRAINED_BY else []
    command += ["--upgrade"] if upgrade else []
    command += [f"--output-file={out.relative_to(REPO)}", "pyproject.toml"]
    subprocess.run(command, cwd=REPO, check=True)
    body = clean_lock(out.read_text())
    out.write_text(f"{DIGEST_PREFIX}{inputs_digest(REPO / 'pyproject.toml', extras)}\n{body}")
    print(f"wrote {out.relative_to(REPO)}")


def main(argv: list[str]) -> int:
    """Compile every target, or those named: ``python scripts/lock.py [--upgrade] [serve gpu train dev]``."""
    upgrade = "--upgrade" in argv
    argv = [arg for arg in argv if arg != "--upgrade"]
    unknown = [name for name in argv if name not in TARGETS]
    if unknown:
        print(f"lock.py: unknown target {', '.join(unknown)}; choose from {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    LOCK_DIR.mkdir(exist_ok=True)
    for name in [target for target in TARGETS if target in argv or not argv]:
        compile_target(name, TARGETS[name], upgrade)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
