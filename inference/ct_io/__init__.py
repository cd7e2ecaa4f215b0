"""CT input: NIfTI files and DICOM series -> :class:`inference.ct_volume.CTVolume`.

Public API: :func:`load_ct`, :func:`list_dicom_series`, :class:`SeriesSummary`.
Modules: load (dispatch), nifti_reader, dicom_scan (find and group series), dicom_geometry
(order, spacing, tilt, LPS->RAS), dicom_pixels (decode into the volume), dicom_reader (series ->
CTVolume), hu_convert (stored values -> int16 HU), memory_guard (refuse before allocating).
"""
from __future__ import annotations

from inference.ct_io.dicom_scan import SeriesSummary
from inference.ct_io.load import list_dicom_series, load_ct

__all__ = ["SeriesSummary", "list_dicom_series", "load_ct"]
