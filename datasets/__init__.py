"""Readers for each on-disk format; each turns files into uint8 images and integer labels.

This top-level package shadows Hugging Face's `datasets` when run from the repository root;
nothing in the project uses that one.
"""

from datasets.registry import DATASETS, DataError, ImageSplits, Split, get_dataset, reader_options

__all__ = ["DATASETS", "DataError", "ImageSplits", "Split", "get_dataset", "reader_options"]
