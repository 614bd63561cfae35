"""Benchmark scripts; each runs as ``python -m benchmarks.<name>``."""
