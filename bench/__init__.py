"""Benchmarks: product figures beside baselines measured in the same run."""
