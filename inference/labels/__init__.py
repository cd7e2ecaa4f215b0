from .organ_labels import (
    Label,
    LabelTable,
    merged_labels,
    totalseg_liver_segments_to_parts,
    totalseg_names,
    totalseg_task_names,
    totalseg_to_merged,
)
from .organ_matcher import OrganMention, match_organs, organs_named, parent_or_self

__all__ = [
    "Label",
    "LabelTable",
    "merged_labels",
    "totalseg_names",
    "totalseg_task_names",
    "totalseg_to_merged",
    "totalseg_liver_segments_to_parts",
    "OrganMention",
    "match_organs",
    "organs_named",
    "parent_or_self",
]
