"""No import cycle between the modules of calibration, service, training and candor.

Every import counts, lazy ones inside functions and ``if TYPE_CHECKING:`` ones too: a cycle that
only type checking closes is still two modules that cannot be understood one without the other.
``from package import name`` is an edge to ``package.name`` when that is a module, else to the
package's ``__init__``; a module's own parent packages are not edges (Python runs them first).
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("calibration", "service", "training", "candor")


def module_names(root: Path) -> dict[str, Path]:
    """Dotted name -> file of every module of the checked packages (``pkg/__init__.py`` is ``pkg``)."""
    modules = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The checked modules a file imports (absolute imports; relative ones are not used here)."""
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            targets.update(
                f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module
                for alias in node.names
            )
    return targets & known


def import_graph(root: Path) -> dict[str, set[str]]:
    """module -> the checked modules it imports (itself left out)."""
    modules = module_names(root)
    known = set(modules)
    return {name: imported_modules(path, known) - {name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as [a, b, ..., a], or [] when the graph has none."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return []


def test_no_import_cycle() -> None:
    assert find_cycle(import_graph(ROOT)) == []


def test_the_check_sees_a_cycle_closed_by_a_type_checking_import(tmp_path: Path) -> None:
    package = tmp_path / "service"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from service.b import B\n")
    (package / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from service import a\n")
    for name in PACKAGES[:1] + PACKAGES[2:]:
        (tmp_path / name).mkdir()
    assert sorted(set(find_cycle(import_graph(tmp_path)))) == ["service.a", "service.b"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_is_seen(package: str) -> None:
    assert any(name.split(".")[0] == package for name in import_graph(ROOT))
