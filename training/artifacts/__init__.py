"""The torch-free half of the post-hoc stage: fit a map on logits, fuse it into ONNX, write and
evaluate artifacts (onnx, onnxruntime, numpy; never torch, checked by tests/test_import_rules.py).

- ``map_fit.py``: ``fit_map(logits, labels, method)`` over the map registry (candor.maps);
- ``onnx_graph.py``: append a fitted map to a logits graph;
- ``artifact.py``: parity check, reference figures, publishing models/<name>/<version>/;
- ``calibrate_onnx.py``: ``candor calibrate-onnx``, any ONNX classifier, no torch;
- ``evaluate.py``: ``candor evaluate``, every metric before and after the map through ONNX Runtime.

The torch steps stay beside the network code: training/export.py (``candor export``, the network
to ONNX with its parity check) and training/module_artifact.py (any nn.Module as an artifact).
"""
