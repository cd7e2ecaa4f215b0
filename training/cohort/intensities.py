"""Tissue classes, their Hounsfield units in a portal venous phase CT, texture, partial-volume
blur and scanner noise.

Values follow the usual radiology references: fat about -100, muscle 40-60, liver about 100
and spleen a little brighter in the portal venous phase, contrast-filled vessels 150-200, renal
cortex brighter than medulla, bone 300-1000, bowel gas -1000, bile about 10.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from scipy.ndimage import gaussian_filter

from .grid import Box


class Tissue(IntEnum):
    AIR = 0  # outside the body
    SKIN = 1
    FAT_SUBCUT = 2
    MUSCLE_WALL = 3
    FAT = 4  # intra-abdominal / mediastinal fat: the free space organs are painted into
    LUNG = 5
    HEART = 6
    BONE_CORTEX = 7
    BONE_MARROW = 8
    DISC = 9
    CORD = 10
    CSF = 11
    MUSCLE = 12
    LIVER = 13
    HEPATIC_VEIN = 14
    SPLEEN = 15
    KIDNEY_CORTEX = 16
    KIDNEY_MEDULLA = 17
    RENAL_SINUS = 18
    ADRENAL = 19
    BILE = 20
    PANCREAS = 21
    DUCT = 22
    GI_WALL = 23
    GI_FLUID = 24
    GI_AIR = 25
    STOOL = 26
    ARTERY = 27
    IVC = 28
    PORTAL = 29
    RIB = 30
    OUTSIDE_FOV = 31  # beyond the reconstruction circle
    LESION = 32  # lesion or lymph node: its HU comes from the lesion's overlay
    RESERVED = 33  # only while painting: fat kept free of lung (the posterior mediastinum)


# tissue: (mean HU, per-case jitter (uniform +-), texture amplitude HU)
_HU: dict[Tissue, tuple[float, float, float]] = {
    Tissue.AIR: (-1000, 0, 0),
    Tissue.SKIN: (25, 10, 4),
    Tissue.FAT_SUBCUT: (-105, 8, 7),
    Tissue.MUSCLE_WALL: (50, 6, 5),
    Tissue.FAT: (-95, 8, 9),
    Tissue.LUNG: (-860, 30, 25),
    Tissue.HEART: (140, 20, 6),
    Tissue.BONE_CORTEX: (900, 100, 40),
    Tissue.BONE_MARROW: (300, 40, 35),
    Tissue.DISC: (85, 10, 6),
    Tissue.CORD: (35, 5, 3),
    Tissue.CSF: (8, 4, 2),
    Tissue.MUSCLE: (52, 6, 6),
    Tissue.LIVER: (105, 8, 4),
    Tissue.HEPATIC_VEIN: (160, 15, 3),
    Tissue.SPLEEN: (118, 8, 4),
    Tissue.KIDNEY_CORTEX: (175, 15, 5),
    Tissue.KIDNEY_MEDULLA: (130, 12, 5),
    Tissue.RENAL_SINUS: (-60, 15, 10),
    Tissue.ADRENAL: (50, 8, 4),
    Tissue.BILE: (10, 5, 1),
    Tissue.PANCREAS: (98, 8, 10),
    Tissue.DUCT: (12, 5, 1),
    Tissue.GI_WALL: (95, 8, 5),
    Tissue.GI_FLUID: (15, 6, 3),
    Tissue.GI_AIR: (-1000, 0, 0),
    Tissue.STOOL: (-40, 25, 45),
    Tissue.ARTERY: (180, 20, 3),
    Tissue.IVC: (140, 15, 6),
    Tissue.PORTAL: (170, 15, 3),
    Tissue.RIB: (550, 60, 40),
    Tissue.OUTSIDE_FOV: (-1024, 0, 0),
    Tissue.LESION: (60, 0, 6),
    Tissue.RESERVED: (-95, 0, 9),
}


@dataclass
class HUTable:
    """Per-case tissue HU (jittered) and texture amplitudes, as (256,) float32 lookups."""

    mean: np.ndarray
    texture: np.ndarray

    def __getitem__(self, tissue: Tissue) -> float:
        return float(self.mean[int(tissue)])


def sample_hu_table(rng: np.random.Generator) -> HUTable:
    mean = np.zeros(256, dtype=np.float32)
    tex = np.zeros(256, dtype=np.float32)
    # one contrast-timing factor scales all enhancing tissues together, as a real bolus would
    bolus = rng.uniform(0.92, 1.08)
    for t, (mu, jit, amp) in _HU.items():
        value = mu + rng.uniform(-jit, jit) if jit else mu
        if t in (Tissue.ARTERY, Tissue.PORTAL, Tissue.IVC, Tissue.HEPATIC_VEIN, Tissue.KIDNEY_CORTEX,
                 Tissue.HEART):
            value *= bolus
        mean[int(t)] = value
        tex[int(t)] = amp
    return HUTable(mean, tex)


def smooth_noise(rng: np.random.Generator, shape) -> np.ndarray:
    """Spatially correlated unit-variance noise (float32): organ texture and bowel content.
    Drawn at half resolution and repeated up (the render blur smooths the blocks away), which
    costs an eighth of full-resolution filtering."""
    low = tuple((n + 1) // 2 for n in shape)
    field = gaussian_filter(rng.standard_normal(low, dtype=np.float32), 0.8, truncate=2.5)
    for axis in range(3):
        field = np.repeat(field, 2, axis=axis)
    field = np.ascontiguousarray(field[: shape[0], : shape[1], : shape[2]])
    field /= np.float32(field.std() or 1.0)
    return field


@dataclass
class Overlay:
    """An HU overlay blended as hu = hu * (1 - alpha) + alpha * value over ``box``.

    alpha: float32 box-shaped in [0, 1]; value: float32 box-shaped (or scalar) HU.
    """

    box: Box
    alpha: np.ndarray
    value: np.ndarray | float


def render_ct(tissue: np.ndarray, table: HUTable, texture: np.ndarray, overlays: list[Overlay],
              noise_sigma: float, spacing, rng: np.random.Generator) -> np.ndarray:
    """Tissue map -> int16 HU volume: mean HU + texture, lesion overlays, partial-volume blur
    (about half a voxel), white scanner noise; clipped to the int16 CT range.

    tissue, texture: (I, J, K); returns int16 (I, J, K)."""
    hu = table.mean[tissue]
    hu += table.texture[tissue] * texture
    for ov in overlays:
        sub = hu[ov.box.sl]
        sub += ov.alpha * (ov.value - sub)
    # partial volume: thinner blur along the coarser axis keeps slices from smearing
    sp = np.asarray(spacing, dtype=np.float64)
    sigma = np.clip(0.55 * sp.min() / sp, 0.3, 0.55)
    hu = gaussian_filter(hu, sigma, truncate=1.5)  # 3 taps per axis
    hu += rng.standard_normal(hu.shape, dtype=np.float32) * np.float32(noise_sigma)
    outside = tissue == Tissue.OUTSIDE_FOV
    hu[outside] = -1024.0
    np.clip(hu, -1024, 3071, out=hu)
    return np.rint(hu).astype(np.int16)
