"""Datasets in their official formats and the evaluation protocols."""
