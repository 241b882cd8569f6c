"""Benchmarks of ftrack-transfer against the tools a studio would use instead.

``scripts/bench`` runs them all on loopback and writes ``bench/RESULTS.md`` with plots in
``bench/results/``; ``bench/README.md`` explains each case and how to read the ratios.
"""
