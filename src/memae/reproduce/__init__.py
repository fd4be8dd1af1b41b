"""Reproducing the paper: the benchmark grids, their records and the generated tables."""
