"""Does a volume look like a CT in Hounsfield units? Decides whether the analysis may run.

An MR, a PET or a CT whose stored values were saved without RescaleIntercept opens fine and
views fine, but the model reads HU: analyzed, an MR (values -47..833) was reported as "malignant
lesion of the pancreas". Two kinds of evidence, as a radiologist would check them:

- the header: a DICOM Modality other than CT;
- the values (on a strided sample, ~1/64 of the voxels): air or lung near -1000 HU somewhere in
  the field (the 1st percentile at or below ``AIR_MAX_HU``), some soft tissue (-200..300 HU), and
  no large share of values beyond any CT's range.

A volume that fails may still be viewed; the analysis refuses it with these reasons unless the
user overrides (``--allow-non-ct``, or confirming in the window), and run.json records that.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AIR_MAX_HU = -500.0  # the 1st percentile of an abdominal CT holds outside air, lung or bowel gas
SOFT_TISSUE_HU = (-200.0, 300.0)
MIN_SOFT_TISSUE_SHARE = 0.01
MAX_HU = 4000.0  # beyond the 12-bit range plus metal; a 99th percentile above is no CT
SAMPLE_STEP = 4


@dataclass(frozen=True)
class CTPlausibility:
    looks_like_ct: bool
    reasons: tuple[str, ...]  # why not, in words; empty when it looks like CT
    p01_hu: float
    median_hu: float
    p99_hu: float
    soft_tissue_share: float

    def as_dict(self) -> dict:
        return {"looks_like_ct": self.looks_like_ct, "reasons": list(self.reasons),
                "p01_hu": self.p01_hu, "median_hu": self.median_hu, "p99_hu": self.p99_hu,
                "soft_tissue_share": round(self.soft_tissue_share, 4)}


def assess_ct(hu: np.ndarray, modality: str) -> CTPlausibility:
    """Judge ``hu`` (int16 (I, J, K)) with DICOM ``modality`` ("" when the file does not say)."""
    sample = np.asarray(hu[::SAMPLE_STEP, ::SAMPLE_STEP, ::SAMPLE_STEP]).ravel()
    if sample.size < 1000:  # a small volume: use it whole
        sample = np.asarray(hu).ravel()
    p01, p50, p99 = (float(v) for v in np.percentile(sample, [1, 50, 99]))
    lo, hi = SOFT_TISSUE_HU
    soft = float(np.count_nonzero((sample >= lo) & (sample <= hi))) / max(sample.size, 1)
    reasons = []
    if modality and modality.upper() != "CT":
        reasons.append(f"the DICOM header says its modality is {modality}, not CT")
    if p01 > AIR_MAX_HU:
        hint = (" (values start near 0: stored values without their RescaleIntercept?)"
                if -50 <= p01 <= 50 else "")
        reasons.append(f"it holds no air: its lowest values (1st percentile) are {p01:.0f}, "
                       f"where a CT has air or lung near -1000 HU{hint}")
    if soft < MIN_SOFT_TISSUE_SHARE:
        reasons.append(f"only {soft:.1%} of its voxels lie in the soft-tissue range {lo:.0f}..{hi:.0f} HU")
    if p99 > MAX_HU:
        reasons.append(f"its 99th percentile is {p99:.0f}, beyond any CT's HU range")
    return CTPlausibility(not reasons, tuple(reasons), p01, p50, p99, soft)
