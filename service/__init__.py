"""Candor's serving stage: FastAPI + ONNX Runtime, never torch."""
