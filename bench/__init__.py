"""Benchmarks: run them with `.venv/bin/python -m bench.<name>` (see docs/benchmarks.md)."""
