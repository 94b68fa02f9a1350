"""Benchmark scripts: each runs as ``uv run python benchmarks/NAME.py`` (see its docstring)."""
