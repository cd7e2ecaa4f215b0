"""Organ shapes and placement of one synthetic abdomen, painted in priority order.

Order matters: the body wall and skeleton first, then vessels (they must stay intact), the
heart and lung bases above the diaphragm, then the solid organs and the digestive tract, each
taking only space no earlier structure claimed. The result is a tissue map (for HU) plus the
merged-scheme organ and substructure label maps, all on the same grid.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .anatomy_body import paint_frame_structures, paint_heart_and_lungs, paint_psoas
from .anatomy_frame import Frame, sample_frame
from .anatomy_gi import (paint_colon, paint_esophagus, paint_pancreas, paint_small_bowel,
                         paint_stomach_and_duodenum)
from .anatomy_solid import paint_gallbladder, paint_kidneys_and_adrenals, paint_liver, paint_spleen
from .anatomy_vessels import paint_great_vessels, paint_visceral_vessels
from .grid import Canvas, Grid
from .intensities import smooth_noise
from .shapes import Path


@dataclass
class Anatomy:
    """A painted abdomen.

    canvas:  tissue / organs / parts maps, (I, J, K) uint8 each.
    texture: (I, J, K) float32 unit-variance correlated noise used for organ texture and stool.
    paths:   centrelines of tubular organs and vessels (world mm), for lesion and node placement.
    """

    grid: Grid
    frame: Frame
    canvas: Canvas
    texture: np.ndarray
    paths: dict[str, Path] = field(default_factory=dict)


def build_anatomy(grid: Grid, rng: np.random.Generator) -> Anatomy:
    frame = sample_frame(rng)
    canvas = Canvas(grid)
    texture = smooth_noise(rng, grid.shape)
    paths: dict[str, Path] = {}
    paint_frame_structures(canvas, frame)
    paths.update(paint_great_vessels(canvas, frame))
    paths["esophagus"] = paint_esophagus(canvas, frame)
    paint_psoas(canvas, frame)
    sleeves = tuple(Path(p.points, p.radii + margin, p.t, p.knots)
                    for p, margin in ((paths["esophagus"], 9.0), (paths["aorta"], 5.0)))
    paint_heart_and_lungs(canvas, frame, sleeves)
    paint_kidneys_and_adrenals(canvas, frame)
    paths.update(paint_visceral_vessels(canvas, frame))
    paint_spleen(canvas, frame)
    paint_gallbladder(canvas, frame)
    paths.update(paint_stomach_and_duodenum(canvas, frame, rng))
    paths["pancreas"] = paint_pancreas(canvas, frame)
    paint_liver(canvas, frame)
    paths["colon"] = paint_colon(canvas, frame, texture, rng)
    paint_small_bowel(canvas, frame, rng)
    return Anatomy(grid, frame, canvas, texture, paths)
