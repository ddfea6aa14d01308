"""Prediction store backends behind one Protocol (store.py): SQLite, Redis, the pending log."""
