"""Checkpoints of other formats: reading the original MDGen's Lightning checkpoints and turning them into
this project's checkpoint format (`python -m mdgen.convert`)."""

from mdgen.checkpoints.original_file import (
    OriginalCheckpoint,
    OriginalCheckpointError,
    read_original_checkpoint,
)
from mdgen.checkpoints.original_recipe import IPASizes, OriginalRecipe, recipe_from_args
from mdgen.checkpoints.original_weights import map_original_weights
from mdgen.checkpoints.writer import converted_checkpoint, write_checkpoint_atomically

__all__ = [
    "IPASizes",
    "OriginalCheckpoint",
    "OriginalCheckpointError",
    "OriginalRecipe",
    "converted_checkpoint",
    "map_original_weights",
    "read_original_checkpoint",
    "recipe_from_args",
    "write_checkpoint_atomically",
]
