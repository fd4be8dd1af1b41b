"""Reproducing the paper: the benchmark grids, their records and the generated tables."""

from memae.reproduce import table1, table3, video  # noqa: F401  (register the tables)
