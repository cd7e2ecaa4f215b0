"""The CT series as classic CT Image files, built from the CTVolume and its source headers.

A de-identified SEG and SR reference CT instance UIDs that exist only in this export (they are
derived from the originals with the export's secret salt), so the export writes the CT beside them
under the same UIDs: a PACS or 3D Slicer opens the three together. Pixels are the volume's HU as
signed 16-bit stored values (RescaleSlope 1, RescaleIntercept 0): lossless, and readable by any
viewer without the original files.
"""
from __future__ import annotations

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID

from inference.ct_volume import CTVolume
from inference.report.dicom_source import frames_of


def ct_slice_datasets(ct: CTVolume, headers: list[Dataset]):
    """Yield (k, file dataset) for each k slice: ``headers`` (source_headers' output, already
    pseudonymised where wanted) completed to CT Image files with their pixel data."""
    frames = frames_of(ct.hu)
    for k, header in enumerate(headers):
        ds = Dataset()
        ds.update(header)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.file_meta = meta
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]  # re-encoded from the analysed volume
        ds.SeriesTime = ds.get("StudyTime", "")
        ds.SeriesDate = ds.get("StudyDate", "")
        ds.ContentDate, ds.ContentTime = ds.SeriesDate, ds.SeriesTime
        ds.PatientOrientation = ""
        ds.Laterality = ""  # Type 2C; an abdominal CT images no paired part
        ds.PatientPosition = ""  # Type 2C; the source's is not kept in the volume
        ds.PositionReferenceIndicator = ""
        ds.KVP = ""
        ds.AcquisitionNumber = ""
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 400
        frame = frames[k]
        ds.SmallestImagePixelValue, ds.LargestImagePixelValue = int(frame.min()), int(frame.max())
        ds["SmallestImagePixelValue"].VR = ds["LargestImagePixelValue"].VR = "SS"
        ds.PixelData = frame.astype("<i2").tobytes()
        ds["PixelData"].VR = "OW"
        yield k, ds
