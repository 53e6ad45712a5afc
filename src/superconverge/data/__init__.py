"""Real data sets as in-memory tensors, and a loader that batches them on the device."""

from superconverge.data.datasets import (
    BUNDLED_DATASETS,
    DATASETS,
    ArrayData,
    DataSplits,
    default_root,
    load,
)
from superconverge.data.formats import DataFormatError, read_idx
from superconverge.data.loader import ArrayLoader, Augment, default_augment

__all__ = [
    "BUNDLED_DATASETS",
    "DATASETS",
    "ArrayData",
    "ArrayLoader",
    "Augment",
    "DataFormatError",
    "DataSplits",
    "default_augment",
    "default_root",
    "load",
    "read_idx",
]
