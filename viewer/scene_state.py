"""The scene every view renders: a Qt-free model that the application changes (napari style).

Views observe it through ``state.events.connect(name, callback)`` and never own the data; the
application (or a test, or an IIR round) changes it only through the setters below, on the GUI
thread. Events (callbacks get no arguments, they read the state):

    case            a new CT (and masks) replaced the old one; everything else was reset
    cursor          the linked crosshair point (world RAS mm) moved
    window_level    the CT display window changed
    labels          visibility, colour, opacity, fill or outline of the label overlay changed
    highlight       the ROI highlight was set or cleared (``roi`` is its box, or None)
    volume_rendering  CT volume rendering in the 3D view was switched on or off
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from inference.ct_volume import CTVolume
from inference.labels import LabelTable, merged_labels
from inference.segmentation.organ_masks import OrganMasks
from viewer.events import Events
from viewer.label_boxes import LabelBoxes
from viewer.roi_highlight import HIGHLIGHT_RGB, Roi, compute_roi
from viewer.window_presets import DEFAULT_PRESET

EVENTS = ("case", "cursor", "window_level", "labels", "highlight", "volume_rendering")


class SceneState:
    """Case, labels, cursor, window/level and ROI highlight shown by every view."""

    def __init__(self) -> None:
        self.events = Events(EVENTS, "scene")
        self.ct: CTVolume | None = None
        self.masks: OrganMasks | None = None
        self.table: LabelTable = merged_labels()
        self.present_ids: tuple[int, ...] = ()
        self.visible: frozenset[int] = frozenset()
        self.colours: dict[int, tuple[int, int, int]] = {}  # overrides of the table's colours
        self.opacity: float = 0.45
        self.fill: bool = True
        self.outline: bool = True
        self.cursor: np.ndarray = np.zeros(3)
        self.window: float = DEFAULT_PRESET.window
        self.level: float = DEFAULT_PRESET.level
        self.highlight: tuple[int, ...] = ()
        self.roi: Roi | None = None
        self.highlight_rgb: tuple[int, int, int] = HIGHLIGHT_RGB
        self.volume_rendering: bool = False
        self._organ_boxes: LabelBoxes | None = None
        self._part_boxes: LabelBoxes | None = None
        self._before_highlight: tuple[np.ndarray, frozenset[int]] | None = None

    # --- case -----------------------------------------------------------------------------
    def set_case(self, ct: CTVolume, masks: OrganMasks | None = None,
                 boxes: tuple[LabelBoxes, LabelBoxes | None] | None = None) -> None:
        """Show a new case; masks must lie on the CT's grid. Resets cursor, labels and highlight.

        ``boxes``: (organ boxes, part boxes) already computed off the GUI thread by a loader.
        """
        if masks is not None and masks.shape != ct.shape:
            raise ValueError(f"masks shape {masks.shape} does not match CT shape {ct.shape}")
        self.ct, self.masks = ct, masks
        self.table = masks.table if masks is not None else merged_labels()
        if masks is None:
            self._organ_boxes = self._part_boxes = None
        elif boxes is not None:
            self._organ_boxes, self._part_boxes = boxes
        else:
            self._organ_boxes = LabelBoxes(masks.organs)
            self._part_boxes = LabelBoxes(masks.parts) if masks.parts is not None else None
        organ_ids = self._organ_boxes.ids() if self._organ_boxes else []
        part_ids = self._part_boxes.ids() if self._part_boxes else []
        self.present_ids = tuple(i for i in organ_ids + part_ids if i in self.table)
        # organs on, substructures off: parts would hide their organ's colour
        self.visible = frozenset(i for i in organ_ids if i in self.table)
        self.colours = {}
        self.highlight, self.roi, self._before_highlight = (), None, None
        self.cursor = ct.voxel_to_world((np.asarray(ct.shape) - 1) // 2)[0]
        self.events.emit("case")

    @property
    def organ_boxes(self) -> LabelBoxes | None:
        return self._organ_boxes

    @property
    def part_boxes(self) -> LabelBoxes | None:
        return self._part_boxes

    # --- cursor and window ----------------------------------------------------------------
    def set_cursor(self, world: Iterable[float]) -> None:
        """Move the linked crosshair (RAS mm), clamped inside the volume."""
        world = np.asarray(list(world), dtype=float)
        if self.ct is not None:
            vox = self.ct.world_to_voxel(world)[0]
            vox = np.clip(vox, 0, np.asarray(self.ct.shape) - 1)
            world = self.ct.voxel_to_world(vox)[0]
        if np.allclose(world, self.cursor, atol=1e-6):
            return
        self.cursor = world
        self.events.emit("cursor")

    def set_window_level(self, window: float, level: float) -> None:
        window = max(float(window), 1.0)
        level = float(level)
        if (window, level) == (self.window, self.level):
            return
        self.window, self.level = window, level
        self.events.emit("window_level")

    # --- labels ---------------------------------------------------------------------------
    def set_label_visible(self, label_id: int, visible: bool) -> None:
        vis = set(self.visible)
        (vis.add if visible else vis.discard)(int(label_id))
        self.set_visible_labels(vis)

    def set_visible_labels(self, ids: Iterable[int]) -> None:
        ids = frozenset(int(i) for i in ids)
        if ids != self.visible:
            self.visible = ids
            self.events.emit("labels")

    def set_label_colour(self, label_id: int, rgb: tuple[int, int, int]) -> None:
        self.colours[int(label_id)] = tuple(int(c) for c in rgb)  # type: ignore[assignment]
        self.events.emit("labels")

    def colour(self, label_id: int) -> tuple[int, int, int]:
        """Display colour of a label: the override if any, else the label table's."""
        if label_id in self.colours:
            return self.colours[label_id]
        return tuple(self.table.by_id(label_id).colour) if label_id in self.table else (255, 255, 255)

    def set_opacity(self, opacity: float) -> None:
        opacity = min(max(float(opacity), 0.0), 1.0)
        if opacity != self.opacity:
            self.opacity = opacity
            self.events.emit("labels")

    def set_fill(self, on: bool) -> None:
        if bool(on) != self.fill:
            self.fill = bool(on)
            self.events.emit("labels")

    def set_outline(self, on: bool) -> None:
        if bool(on) != self.outline:
            self.outline = bool(on)
            self.events.emit("labels")

    def label_volume_ml(self, label_id: int) -> float:
        """Volume of a label in millilitres (0 without masks)."""
        boxes = self._part_boxes if label_id >= 100 else self._organ_boxes
        if boxes is None or self.ct is None:
            return 0.0
        voxel_ml = abs(float(np.linalg.det(self.ct.affine[:3, :3]))) / 1000.0
        return float(boxes.counts()[int(label_id)]) * voxel_ml

    def label_name(self, label_id: int) -> str:
        return self.table.by_id(label_id).display if label_id in self.table else f"label {label_id}"

    # --- ROI highlight --------------------------------------------------------------------
    def set_highlight(self, label_ids: Iterable[int | str]) -> Roi | None:
        """Highlight organs (ids or label names, as an IIR round names them).

        Views centre on the ROI, other labels dim, the ROI gets a strong outline and a box.
        Returns the Roi, or None (and changes nothing) when none of the labels is in the masks.
        """
        ids = tuple(sorted({self._label_id(i) for i in label_ids}))
        if not ids:
            self.clear_highlight()
            return None
        if self.ct is None or self._organ_boxes is None:
            return None
        roi = compute_roi(ids, self.ct.affine, self._organ_boxes, self._part_boxes)
        if roi is None:
            return None
        if self._before_highlight is None:
            self._before_highlight = (self.cursor.copy(), self.visible)
        self.highlight, self.roi = ids, roi
        self.visible = self._before_highlight[1] | frozenset(ids)
        self.cursor = np.asarray(roi.centre_world, dtype=float)
        for name in ("highlight", "labels", "cursor"):
            self.events.emit(name)
        return roi

    def clear_highlight(self) -> None:
        """Remove the highlight and restore the cursor and visible labels from before it."""
        if self._before_highlight is None:
            return
        cursor, visible = self._before_highlight
        self._before_highlight = None
        self.highlight, self.roi = (), None
        self.visible, self.cursor = visible, cursor
        for name in ("highlight", "labels", "cursor"):
            self.events.emit(name)

    def _label_id(self, key: int | str) -> int:
        if isinstance(key, str):
            if key not in self.table:
                raise KeyError(f"unknown label name {key!r}")
            return self.table.by_name(key).id
        return int(key)

    # --- 3D -------------------------------------------------------------------------------
    def set_volume_rendering(self, on: bool) -> None:
        if bool(on) != self.volume_rendering:
            self.volume_rendering = bool(on)
            self.events.emit("volume_rendering")
