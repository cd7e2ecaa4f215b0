"""Organ overlay of one slice: label fill, label outline and the ROI's strong outline, as RGBA.

The colour tables are rebuilt only when labels or the highlight change (``OverlayStyle``); a slice
change only indexes them (``compose``), so it stays a few numpy passes over one 2D slice.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIM_FACTOR = 0.3  # alpha of non-ROI labels while a ROI is highlighted


@dataclass(frozen=True, eq=False)
class OverlayStyle:
    """Per-label lookup tables, (256, 4) uint8 RGBA indexed by label id (organs and parts share
    one id space: organs 1..99, parts >= 100)."""

    fill: np.ndarray
    outline: np.ndarray
    roi: np.ndarray  # (256,) bool: label belongs to the highlighted ROI
    parts_visible: bool  # any substructure is shown (parts are composed over organs)
    highlight_rgba: np.ndarray  # (4,) uint8

    @classmethod
    def from_state(cls, state) -> "OverlayStyle":
        fill = np.zeros((256, 4), dtype=np.uint8)
        outline = np.zeros((256, 4), dtype=np.uint8)
        roi = np.zeros(256, dtype=bool)
        roi[list(state.highlight)] = True
        dim = DIM_FACTOR if state.highlight else 1.0
        for lid in state.visible:
            if not 0 < lid < 256:
                continue
            rgb = state.colour(lid)
            f = 1.0 if roi[lid] else dim
            fill[lid, :3] = rgb
            outline[lid, :3] = rgb
            if state.fill:
                fill[lid, 3] = int(round(255 * state.opacity * f))
            if state.outline:
                outline[lid, 3] = int(round(255 * f))
        parts = any(lid >= 100 for lid in state.visible)
        hl = np.array([*state.highlight_rgb, 255], dtype=np.uint8)
        return cls(fill, outline, roi, parts, hl)


def upsample_factor(n_rows: int, n_cols: int, target: int = 512, cap: int = 4) -> int:
    """Integer factor that brings a small slice near ``target`` pixels, so outlines stay thin."""
    return int(min(max(int(np.ceil(target / max(n_rows, n_cols, 1))), 1), cap))


def compose(organs: np.ndarray, parts: np.ndarray | None, style: OverlayStyle, factor: int = 1,
            out: np.ndarray | None = None) -> np.ndarray:
    """RGBA overlay (rows*factor, cols*factor, 4) uint8 of one label slice (rows, cols).

    organs / parts: uint8 slices of the same shape (parts may be None). ``out`` is reused when given.
    """
    lab = organs
    if parts is not None and style.parts_visible:
        shown = style.fill[parts, 3] | style.outline[parts, 3]  # only visible parts cover organs
        lab = np.where((parts > 0) & (shown > 0), parts, organs)
    if factor > 1:
        lab = np.repeat(np.repeat(lab, factor, axis=0), factor, axis=1)
    rgba = out if out is not None and out.shape == lab.shape + (4,) else np.empty(lab.shape + (4,), np.uint8)
    np.take(style.fill, lab, axis=0, out=rgba)
    if style.outline[:, 3].any():
        edge = _edges(lab) & (lab > 0)
        rgba[edge] = style.outline[lab[edge]]
    if style.roi.any():
        inside = style.roi[lab]
        if inside.any():
            ring = _edges(inside, both_sides=True)  # two pixels: one inside, one outside the edge
            rgba[ring] = style.highlight_rgba
    return rgba


def _edges(lab: np.ndarray, both_sides: bool = False) -> np.ndarray:
    """Pixels whose 4-neighbourhood holds another value (inner ring; both rings if asked)."""
    e = np.zeros(lab.shape, dtype=bool)
    dv = lab[1:, :] != lab[:-1, :]
    dh = lab[:, 1:] != lab[:, :-1]
    e[1:, :] |= dv
    e[:, 1:] |= dh
    e[:-1, :] |= dv
    e[:, :-1] |= dh
    if not both_sides and lab.dtype == bool:
        e &= lab
    return e
