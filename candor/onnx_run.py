"""Running an artifact's ONNX graph in ONNX Runtime: one place for the session options, the
provider choice and chunked runs, used by the service's engine and by ``candor evaluate``.

It imports neither ``service`` nor ``training`` (nor torch), so both stages may use it.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def requested_providers(choice: str) -> list[str]:
    """Providers to ask for: CUDA first when wanted ("auto", "cuda") and compiled in, CPU always
    as fallback. ``session.get_providers()`` (not the available list) says what runs."""
    if choice in ("auto", "cuda") and CUDA in ort.get_available_providers():
        return [CUDA, CPU]
    return [CPU]


def session_options(intra_op_threads: int) -> ort.SessionOptions:
    """Options every Candor session uses: the given intra-op threads (0: ORT's default), no spinning
    (spinning threads burn the cores the event loop and the other replicas need)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def open_cpu_session(model: bytes) -> ort.InferenceSession:
    """A CPU session on serialized ONNX bytes, with the options the service uses."""
    return ort.InferenceSession(model, session_options(0), providers=[CPU])


def run_chunked(
    session: ort.InferenceSession, input_name: str, x: NDArray[np.float32], chunk: int = 1024
) -> list[NDArray[np.float32]]:
    """Every graph output for ``x``, run ``chunk`` rows at a time and concatenated along rows."""
    runs = [session.run(None, {input_name: x[i : i + chunk]}) for i in range(0, len(x), chunk)]
    return [np.concatenate([run[k] for run in runs]) for k in range(len(session.get_outputs()))]
