"""Each peer in its own venv (``python3.11 -m venv``), installed from its module's pins and reused
while the pins are unchanged (a marker file holds them).

This machine's pip configuration (find-links, a torch cap) applies as it is; Candor's locks are
never handed to a peer, so each resolves its own dependencies.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

MARKER = "candor-peer-requirements.txt"


def marker_text(requirements: tuple[str, ...]) -> str:
    return "\n".join(requirements) + "\n"


def is_installed(venv: Path, requirements: tuple[str, ...]) -> bool:
    """The venv exists and was installed from exactly these pins."""
    marker = venv / MARKER
    return (venv / "bin" / "python").exists() and marker.exists() and marker.read_text() == marker_text(requirements)


def ensure_venv(venv: Path, requirements: tuple[str, ...], python: str = "python3.11") -> float:
    """Create and install ``venv`` unless already installed from ``requirements``; seconds spent."""
    if is_installed(venv, requirements):
        return 0.0
    started = time.monotonic()
    subprocess.run([python, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    log = venv.with_suffix(".install.log")
    with log.open("w") as out:
        result = subprocess.run([*pip, *requirements], stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"pip install {' '.join(requirements)} failed ({result.returncode}); see {log}")
    (venv / MARKER).write_text(marker_text(requirements))
    return time.monotonic() - started


def installed_versions(venv: Path, names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of ``names`` in ``venv`` (missing ones left out)."""
    script = (
        "import sys, json\nfrom importlib import metadata\nout = {}\nfor n in sys.argv[1:]:\n"
        "    try: out[n] = metadata.version(n)\n    except metadata.PackageNotFoundError: pass\nprint(json.dumps(out))"
    )
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script, *names], capture_output=True, text=True, check=True
    )
    return dict(json.loads(result.stdout))


def current_python_versions(names: tuple[str, ...]) -> dict[str, str]:
    """The same for the interpreter running the benchmark (Candor's venv)."""
    return installed_versions(Path(sys.prefix), names)
