"""Benchmarks (`make bench`): numbers printed as ratios against baselines measured in the same run."""
