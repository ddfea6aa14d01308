"""The ``candor`` command (subcommands of the training stage and the service, imported lazily) and
the torch-free pieces both stages and the service share: ONNX Runtime sessions, the map registry,
map fusion, artifact writing and the recalibrated graph."""
