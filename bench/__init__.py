"""Benchmarks of minik8s; results are written to docs/BENCHMARKS.md."""
