from .organ_labels import (
    Label,
    LabelTable,
    merged_labels,
    totalseg_liver_segments_to_parts,
    totalseg_names,
    totalseg_task_names,
    totalseg_to_merged,
)

__all__ = [
    "Label",
    "LabelTable",
    "merged_labels",
    "totalseg_names",
    "totalseg_task_names",
    "totalseg_to_merged",
    "totalseg_liver_segments_to_parts",
]
