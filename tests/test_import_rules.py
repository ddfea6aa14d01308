"""The floors of the house, checked on every import statement (lazy ones inside functions too).

- ``calibration`` imports the standard library, numpy, scipy, pydantic and itself (plus matplotlib
  in ``calibration/plots.py``, the reliability diagrams), nothing else;
- ``training`` never imports ``service``; ``service`` never imports ``training`` or torch;
- ``training/artifacts`` (fit on logits, fuse, write and evaluate artifacts) never imports torch;
- ``candor`` (shared runtime helpers) imports neither stage, except ``candor/cli.py``, the one
  entry point that registers every stage's commands.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CALIBRATION_ALLOWED = {"numpy", "scipy", "pydantic", "calibration"}
FORBIDDEN = {
    "training": {"service"},
    "training/artifacts": {"service", "torch", "torchvision"},
    "service": {"training", "torch", "torchvision"},
    "candor": {"service", "training", "torch"},
}
EXCEPTIONS = {("calibration/plots.py", "matplotlib"), ("candor/cli.py", "service"), ("candor/cli.py", "training")}


def imported_roots(path: Path) -> set[str]:
    """The top-level package of every absolute import in a file."""
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def forbidden_edges(package: str) -> list[str]:
    """'file -> package' for every import that breaks the package's rule."""
    edges = []
    for path in sorted((ROOT / package).rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        for root in sorted(imported_roots(path)):
            if package == "calibration":
                bad = root not in CALIBRATION_ALLOWED and root not in sys.stdlib_module_names
            else:
                bad = root in FORBIDDEN[package]
            if bad and (name, root) not in EXCEPTIONS:
                edges.append(f"{name} -> {root}")
    return edges


@pytest.mark.parametrize("package", ["calibration", "training", "training/artifacts", "service", "candor"])
def test_no_forbidden_import_edge(package: str) -> None:
    assert forbidden_edges(package) == []


def test_the_check_sees_a_forbidden_edge(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from service.inference.engine import Engine\n    import torch.nn\n")
    assert imported_roots(module) == {"service", "torch"}
