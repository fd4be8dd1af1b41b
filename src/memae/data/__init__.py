"""Users' data and the paper's datasets: :func:`read_data` is the one entrance for a path or an
object (tables, image folders, arrays); the other modules read the datasets in their official
formats and hold the evaluation protocols."""

from memae.data.reader import Dataset, ImageOptions, TableOptions, read_data

__all__ = ["Dataset", "ImageOptions", "TableOptions", "read_data"]
