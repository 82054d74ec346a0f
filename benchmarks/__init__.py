"""Benchmarks comparing tickwork with oslo.service, each measurement in its own process.

Run everything with ``python -m benchmarks.run``; see benchmarks/README.md.
"""
