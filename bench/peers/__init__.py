"""Candor side by side with other serving frameworks (``python -m bench.peers``): see __main__.py."""
