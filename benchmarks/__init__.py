"""Benchmarks: ``python -m benchmarks`` runs every module here that has a ``main()``.

Results and the commands that produced them are in docs/benchmarks.md.
"""
