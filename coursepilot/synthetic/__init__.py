"""The embedded synthetic dataset: generator, vocabularies and size presets."""

from .generator import SIZES, SyntheticSpec, ensure_dataset, generate, write_dataset

__all__ = ["SIZES", "SyntheticSpec", "ensure_dataset", "generate", "write_dataset"]
