"""Open Inference Protocol (KServe V2): health and model metadata."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.api.deps import RepositoryDep

router = APIRouter(tags=["v2"])


@router.get("/v2/health/live")
async def live() -> dict[str, bool]:
    """The process answers."""
    return {"live": True}


@router.get("/v2/health/ready")
async def ready(repository: RepositoryDep) -> dict[str, bool]:
    """Ready when at least one model is loaded."""
    return {"ready": len(repository) > 0}


@router.get("/v2/models/{model_name}")
async def model_metadata(model_name: str, repository: RepositoryDep) -> dict[str, Any]:
    """V2 model metadata; ``parameters`` carry the calibration map, reference ECE and provider."""
    engine = repository.get(model_name)
    m = engine.manifest
    return {
        "name": m.name,
        "versions": sorted(repository.models[m.name], key=int),
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": m.input.name, "datatype": "FP32", "shape": [-1, *m.input.shape[1:]]}],
        "outputs": [{"name": m.output.name, "datatype": "FP32", "shape": [-1, *m.output.shape[1:]]}],
        "parameters": {
            "version": m.version,
            "classes": m.classes,
            "calibration_map": m.calibration.kind,
            "temperature": m.calibration.temperature,
            "gamma": m.calibration.gamma,
            "reference_ece": m.reference.ece,
            "reference_accuracy": m.reference.accuracy,
            "execution_provider": engine.provider,
            "preprocessing": m.preprocessing.model_dump(),
        },
    }
