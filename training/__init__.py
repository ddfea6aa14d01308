"""Candor training stage (torch): data, networks, losses, trainer, post-hoc fitting, ONNX export."""
