"""The inference engine: ONNX Runtime sessions, dynamic batching, the model repository and its manager."""
