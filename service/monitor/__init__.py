"""Calibration monitor: label join store, sliding windows, drift tests, Prometheus collector."""
