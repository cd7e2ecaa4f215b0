"""Lesion shapes (round, oval, lobulated, irregular) as signed-distance fields, and the HU a
lesion of each density shows.

A shape is a radius that depends on direction, R(n), around a centre: the lesion is where
|u| <= R(u/|u|). Its boundary is blurred with a logistic ramp: narrow for well-defined lesions,
a few millimetres wide for ill-defined ones, so the blur survives the soft-tissue window.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .grid import Box, Grid
from .shapes import local_coords, random_rotation

EDGE_MM = {"well-defined": 0.6, "ill-defined": 3.0}  # fade-out length outside the outline


@dataclass
class LesionShape:
    """kind: round | oval | lobulated | irregular. radius: base radius (mm); semi: oval semi-axes;
    dirs/amps/freqs/phases: angular modulation of lobulated and irregular outlines."""

    kind: str
    radius: float
    rot: np.ndarray
    semi: tuple[float, float, float] = (0.0, 0.0, 0.0)
    dirs: np.ndarray | None = None
    amps: np.ndarray | None = None
    freqs: np.ndarray | None = None
    phases: np.ndarray | None = None

    @property
    def extent(self) -> float:
        """Largest distance from the centre to the outline (mm)."""
        if self.kind == "oval":
            return max(self.semi)
        if self.kind == "lobulated":
            return self.radius * (1.0 + float(self.amps.max()))
        if self.kind == "irregular":
            return self.radius * (1.0 + float(np.abs(self.amps).sum()))
        return self.radius

    def fields(self, box: Box, centre) -> tuple[np.ndarray, np.ndarray]:
        """(signed distance mm, normalised radius) over ``box``; both float32 box-shaped,
        negative / below 1 inside."""
        u, v, w = local_coords(box, centre, self.rot)
        u, v, w = np.broadcast_arrays(u, v, w)
        if self.kind == "oval":
            a, b, c = (np.float32(s) for s in self.semi)
            rho = np.sqrt((u / a) ** 2 + (v / b) ** 2 + (w / c) ** 2)
            return (rho - 1.0) * np.float32(min(self.semi)), rho
        dist = np.sqrt(u * u + v * v + w * w)
        if self.kind == "round":
            r = np.float32(self.radius)
            return dist - r, dist / r
        safe = np.maximum(dist, np.float32(1e-3))
        cos = [(u * d[0] + v * d[1] + w * d[2]) / safe for d in self.dirs.astype(np.float32)]
        if self.kind == "lobulated":
            bump = np.max([np.exp((c - 1.0) / np.float32(0.12)) * np.float32(a)
                           for c, a in zip(cos, self.amps)], axis=0)
        else:
            bump = np.sum([np.float32(a) * np.cos(np.float32(np.pi * f) * c + np.float32(p))
                           for c, a, f, p in zip(cos, self.amps, self.freqs, self.phases)], axis=0)
        r = np.float32(self.radius) * (1.0 + bump)
        return dist - r, dist / r


def make_shape(kind: str, diameter_mm: float, rng: np.random.Generator) -> LesionShape:
    """A random outline of the given kind whose longest extent is about ``diameter_mm``."""
    rot = random_rotation(rng)
    half = diameter_mm / 2.0
    if kind == "round":
        return LesionShape(kind, half * rng.uniform(0.97, 1.0), rot)
    if kind == "oval":
        semi = (half, half * rng.uniform(0.58, 0.72), half * rng.uniform(0.62, 0.8))
        return LesionShape(kind, half, rot, semi=semi)
    if kind == "lobulated":
        k = int(rng.integers(3, 6))
        dirs = rng.standard_normal((k, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        amps = rng.uniform(0.22, 0.34, size=k)
        base = half / (1.0 + amps.max())
        return LesionShape(kind, base, rot, dirs=dirs, amps=amps)
    if kind == "irregular":
        k = 7
        dirs = rng.standard_normal((k, 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        amps = rng.uniform(0.03, 0.07, size=k)
        base = half / (1.0 + 0.6 * amps.sum())
        return LesionShape(kind, base, rot, dirs=dirs, amps=amps, freqs=rng.uniform(2.0, 4.5, size=k),
                           phases=rng.uniform(0, 2 * np.pi, size=k))
    raise ValueError(f"unknown lesion shape {kind!r}")


def lesion_box(grid: Grid, centre, shape: LesionShape, boundary: str) -> Box | None:
    pad = shape.extent + 4.0 * EDGE_MM[boundary] + max(grid.spacing)
    c = np.asarray(centre, dtype=np.float64)
    return grid.box(c - pad, c + pad)


def edge_alpha(signed_mm: np.ndarray, boundary: str) -> np.ndarray:
    """Logistic opacity of the lesion over a signed distance field: about 0.9 on the outline
    (every voxel of the mask shows nearly the full contrast), then fading outside, over half a
    millimetre for a well-defined lesion and a few millimetres for an ill-defined one."""
    s = signed_mm.astype(np.float32)
    inside = 1.0 - 0.1 * np.exp(np.minimum(s, 0.0) / np.float32(0.5))
    outside = 0.9 * np.exp(-((np.maximum(s, 0.0) / np.float32(EDGE_MM[boundary])) ** 2))
    return np.where(s < 0, inside, outside).astype(np.float32)


def lesion_hu(density: str | None, others: tuple[str, ...], rho: np.ndarray, reference: float,
              rng: np.random.Generator) -> np.ndarray:
    """HU inside a lesion (float32, shape of ``rho``) for its density against the parenchyma
    ``reference``: hypodense / hyperdense 45-70 HU away from it (visible in a W400/L40 window),
    fluid attenuation near water, mixed = low centre inside an enhancing rim, rim enhancement =
    low core with a thin brighter rim; nodes (density None) soft tissue."""
    if density is None:
        return np.full(rho.shape, rng.uniform(55.0, 72.0), dtype=np.float32)
    if "fluid attenuation" in others:
        return np.full(rho.shape, rng.uniform(2.0, 14.0), dtype=np.float32)
    if density == "hypodense":
        core = reference - rng.uniform(55.0, 75.0)
        if "rim enhancement" in others:  # a rim brighter than the core, still below the parenchyma
            core = reference - rng.uniform(65.0, 80.0)
            rim = reference - rng.uniform(28.0, 35.0)
            return np.where(rho > 0.82, rim, core).astype(np.float32)
        return np.full(rho.shape, core, dtype=np.float32)
    if density == "hyperdense":
        return np.full(rho.shape, reference + rng.uniform(48.0, 70.0), dtype=np.float32)
    if density == "mixed":
        necrosis = "central necrosis" in others
        core = reference - rng.uniform(70.0, 90.0) if necrosis else reference - rng.uniform(55.0, 75.0)
        rim = reference + rng.uniform(30.0, 45.0)
        return np.where(rho > 0.6, rim, core).astype(np.float32)
    raise ValueError(f"unknown density {density!r}")
