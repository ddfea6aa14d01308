"""The KServe V2 (Open Inference Protocol) gRPC server: service ``inference.GRPCInferenceService``
on its own port, sharing the HTTP app's repository (engines, batchers, the monitor's recorder) and auth."""
