"""Print the requirements of pyproject.toml's core dependencies plus the named extras, one a line.

The image build installs these first, in a layer that changes only with pyproject.toml, then the
project itself with ``--no-deps``; tests/deploy builds the runtime environment the same way::

    python3 requirements.py pyproject.toml cpu > requirements.txt
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """Core dependencies, then each extra's, in pyproject order; an unknown extra is an error."""
    project = tomllib.loads(pyproject.read_text())["project"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    unknown = [extra for extra in extras if extra not in optional]
    if unknown:
        raise SystemExit(f"requirements.py: {pyproject} has no extra {', '.join(unknown)}")
    return [*project["dependencies"], *(req for extra in extras for req in optional[extra])]


def main(argv: list[str]) -> int:
    if len(argv) < 1:
        raise SystemExit("usage: requirements.py PYPROJECT [EXTRA ...]")
    print("\n".join(requirements(Path(argv[0]), argv[1:])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
