"""Candor's torch-free calibration core: metrics, bin statistics, calibration maps, the manifest.

Imported by both training/ and service/; depends on numpy (and pydantic for the manifest) only.
"""
