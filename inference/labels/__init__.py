from .organ_labels import Label, LabelTable, merged_labels, totalseg_names, totalseg_to_merged

__all__ = ["Label", "LabelTable", "merged_labels", "totalseg_names", "totalseg_to_merged"]
