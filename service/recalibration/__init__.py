"""Closed-loop recalibration: refit from labelled production predictions (or re-estimate class
priors from unlabelled ones), write a new version beside the served one, promote it only when a
paired held-out comparison says it is better.

- ``candidate.py``: the job (split, fit, compose, parity, write the candidate, compare, decide);
- ``promotion.py``: the candidate into models_dir atomically, then the repository's load path;
- ``runner.py``: in the server (one per model at a time, the metric) and offline (the CLI).
"""
