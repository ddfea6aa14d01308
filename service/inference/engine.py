"""ONNX Runtime engines: one per artifact, verified against its manifest before serving."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

from calibration.errors import InputError
from calibration.manifest import Manifest, load_verified
from candor.onnx_run import CUDA, requested_providers, session_options
from service.errors import ArtifactError, BadRequest
from service.inference.batching import BatchConfig, Batcher
from service.inference.served import Recorder, Served, Unrecorded


def open_session(model: bytes, path: Path, providers: str, intra_op_threads: int) -> ort.InferenceSession:
    """Create the session from the verified bytes of ``path`` (not re-read from disk);
    ``session.get_providers()`` (not the available list) says what runs."""
    options = session_options(intra_op_threads)
    try:
        session = ort.InferenceSession(model, options, providers=requested_providers(providers))
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph classes
        raise ArtifactError(f"ONNX Runtime cannot load it: {exc}", field=str(path)) from exc
    if providers == "cuda" and session.get_providers()[0] != CUDA:
        raise ArtifactError("CUDA was requested (CANDOR_PROVIDERS=cuda) but did not load", field=str(path))
    return session


@dataclass(eq=False)
class Engine:
    """A loaded artifact: manifest + session. ``predict`` maps preprocessed instances to
    probabilities (blocking); ``infer`` does it through the dynamic batcher, off the event loop,
    and records every served row with ``recorder`` (given when the engine is built) in the same
    worker-thread call."""

    manifest: Manifest
    session: ort.InferenceSession
    directory: Path
    batcher: Batcher[Served] | None = field(default=None, repr=False)
    recorder: Recorder = field(default_factory=Unrecorded, repr=False)

    def attach_batcher(self, config: BatchConfig) -> Batcher[Served]:
        """Give this engine its own queue (one per model version); returns it."""
        self.batcher = Batcher(self.serve_rows, config, f"{self.manifest.name}/{self.manifest.version}")
        return self.batcher

    def arriving(self) -> AbstractContextManager[None]:
        """Announce a request being parsed for this engine (see Batcher.arriving)."""
        return self.batcher.arriving() if self.batcher is not None else nullcontext()

    async def infer(self, batch: NDArray[np.float32], deadline: float | None = None) -> Served:
        """Calibrated probabilities (N, K) and their recorded prediction ids, through the batcher
        (503 when full or past the deadline; the store's error when recording fails)."""
        if self.batcher is None:
            self.attach_batcher(BatchConfig())
        assert self.batcher is not None
        return await self.batcher.submit(batch, deadline)

    def serve_rows(self, batch: NDArray[np.float32]) -> Served:
        """One batched call (blocking, in the batcher's worker thread): probabilities, then the
        rows recorded, so an answered prediction is already stored (one thread hop, not two)."""
        probs = self.predict(batch)
        ids = self.recorder.record(self.manifest.name, self.manifest.version, probs)
        return Served(probs, ids)

    def recorded_by(self, recorder: Recorder) -> Engine:
        """A new engine on the same verified manifest and session that records with ``recorder``
        (and has no batcher yet): for engines loaded before the app's monitor existed."""
        return Engine(manifest=self.manifest, session=self.session, directory=self.directory, recorder=recorder)

    @property
    def provider(self) -> str:
        """The execution provider actually in use."""
        return str(self.session.get_providers()[0])

    def preprocess(self, raw: NDArray[np.float64], field: str) -> NDArray[np.float32]:
        """Check shape and range of raw instances, then the manifest's normalisation, as float32
        (calibration.preprocessing); a bad instance is a 400 naming the element."""
        try:
            return self.manifest.preprocessing.normalise(raw, self.manifest.instance_shape, field)
        except InputError as exc:
            raise BadRequest(exc.message, field=exc.field) from exc

    def predict(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        """Calibrated probabilities (N, K) from the fused graph (blocking; call off the event loop)."""
        name = self.manifest.input.name
        out: NDArray[np.float32] = self.session.run([self.manifest.output.name], {name: batch})[0]
        return out


def load_engine(
    directory: Path, providers: str = "auto", intra_op_threads: int = 0, recorder: Recorder | None = None
) -> Engine:
    """Verify schema and both digests, open the session on the very bytes hashed, and check the
    graph's I/O against the manifest; served rows go to ``recorder`` (default: stored nowhere)."""
    manifest, model = load_verified(directory)
    return engine_of(directory, manifest, model, providers, intra_op_threads, recorder)


def engine_of(
    directory: Path,
    manifest: Manifest,
    model: bytes,
    providers: str = "auto",
    intra_op_threads: int = 0,
    recorder: Recorder | None = None,
) -> Engine:
    """An engine from an already verified manifest and the ONNX bytes it was verified against."""
    session = open_session(model, directory / manifest.onnx_file, providers, intra_op_threads)
    check_graph_matches(session, manifest, directory)
    return Engine(manifest=manifest, session=session, directory=directory, recorder=recorder or Unrecorded())


def check_graph_matches(session: ort.InferenceSession, manifest: Manifest, directory: Path) -> None:
    """Input / output names and non-batch dims of the graph must equal the manifest's."""
    where = str(directory / "manifest.json")
    for kind, spec, graph_io in (
        ("input", manifest.input, session.get_inputs()),
        ("output", manifest.output, session.get_outputs()),
    ):
        names = {g.name: g for g in graph_io}
        if spec.name not in names:
            raise ArtifactError(
                f"graph has no {kind} named '{spec.name}' (has {sorted(names)})", field=f"{where}: {kind}.name"
            )
        graph_dims = [d if isinstance(d, int) else None for d in names[spec.name].shape]
        if graph_dims[1:] != spec.shape[1:]:
            raise ArtifactError(
                f"graph {kind} shape {graph_dims} does not match manifest {spec.shape}", field=f"{where}: {kind}.shape"
            )
