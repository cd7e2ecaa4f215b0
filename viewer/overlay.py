"""Organ overlay of one slice: label fill, label outline and the ROI's strong outline.

A slice's overlay is an image of style codes (uint16): ``id`` = fill of label id, ``256 + id`` =
outline of label id, ``HIGHLIGHT`` = the ROI ring, 0 = nothing. ``OverlayStyle`` turns codes into
colours; its ``blend_table`` maps (code, grey) straight to the final RGBA pixel, so drawing a slice
is one table lookup per pixel. Tables are rebuilt only when labels or the highlight change.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np

DIM_FACTOR = 0.3  # alpha of non-ROI labels while a ROI is highlighted
OUTLINE = 256  # code offset of outlines
HIGHLIGHT = 512  # code of the ROI ring
N_CODES = 513


@dataclass(frozen=True, eq=False)
class OverlayStyle:
    """Colours of every code. fill / outline: (256, 4) uint8 RGBA indexed by label id (organs
    1..99 and parts >= 100 share one id space)."""

    fill: np.ndarray
    outline: np.ndarray
    roi: np.ndarray  # (256,) bool: label belongs to the highlighted ROI
    parts_visible: bool  # any substructure is shown (parts are composed over organs)
    highlight_rgba: np.ndarray  # (4,) uint8
    _blend: list = field(default_factory=list, repr=False)  # lazily built blend table

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

    @property
    def colours(self) -> np.ndarray:
        """(N_CODES, 4) uint8 RGBA of every code."""
        return np.concatenate([self.fill, self.outline, self.highlight_rgba[None]])

    def blend_table(self) -> np.ndarray:
        """(N_CODES * 256,) uint32: RGBA pixel (native byte order) of code c over grey g at c*256+g."""
        if not self._blend:
            col = self.colours.astype(np.float32)
            a = col[:, 3:4, None] / 255.0  # (codes, 1, 1)
            grey = np.arange(256, dtype=np.float32)[None, None, :]  # (1, 1, 256)
            rgb = np.rint(grey * (1 - a) + col[:, :3, None] * a).astype(np.uint32)  # (codes, 3, 256)
            r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
            if sys.byteorder == "little":
                table = r | (g << 8) | (b << 16) | np.uint32(0xFF000000)
            else:
                table = (r << 24) | (g << 16) | (b << 8) | np.uint32(0xFF)
            self._blend.append(np.ascontiguousarray(table.reshape(-1)))
        return self._blend[0]


def upsample_factor(n_rows: int, n_cols: int, target: int = 512, cap: int = 4) -> int:
    """Integer factor that brings a small slice near ``target`` pixels, so outlines stay thin."""
    return int(min(max(int(np.ceil(target / max(n_rows, n_cols, 1))), 1), cap))


def compose_codes(organs: np.ndarray, parts: np.ndarray | None, style: OverlayStyle, factor: int = 1,
                  out: np.ndarray | None = None) -> np.ndarray:
    """Style codes (rows*factor, cols*factor) uint16 of one label slice (rows, cols).

    organs / parts: uint8 slices of the same shape (parts may be None). ``out`` is reused when given.
    """
    lab = organs
    if parts is not None and style.parts_visible:
        shown = style.fill[parts, 3] | style.outline[parts, 3]  # only visible parts cover organs
        lab = np.where((parts > 0) & (shown > 0), parts, organs)
    if factor > 1:
        lab = np.repeat(np.repeat(lab, factor, axis=0), factor, axis=1)
    codes = out if out is not None and out.shape == lab.shape else np.empty(lab.shape, np.uint16)
    np.copyto(codes, lab)
    if style.outline[:, 3].any():
        edge = _edges(lab)
        edge &= lab > 0
        codes[edge] += OUTLINE
    if style.roi.any():
        inside = style.roi[lab]
        if inside.any():
            codes[_edges(inside, both_sides=True)] = HIGHLIGHT  # two pixels: either side of the edge
    return codes


def compose(organs: np.ndarray, parts: np.ndarray | None, style: OverlayStyle, factor: int = 1) -> np.ndarray:
    """RGBA overlay (rows*factor, cols*factor, 4) uint8: the colours of ``compose_codes``."""
    return style.colours[compose_codes(organs, parts, style, factor)]


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
