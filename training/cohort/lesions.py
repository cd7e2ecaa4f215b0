"""Drawing lesions, enlarged lymph nodes and metastases into a painted abdomen.

A primary lesion or metastasis is centred deep inside its substructure (solid organs) or on the
wall of its segment (hollow organs); it may grow into the organ and the surrounding fat but
never into another organ or lesion, and the voxels it takes become its organ (and part) in the
label maps. Lymph nodes sit in fat next to the primary organ. Each object adds an HU overlay
(see lesion_shapes) and its instance id to the lesions map.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import distance_transform_edt

from .anatomy import Anatomy
from .grid import Box, lid
from .intensities import HUTable, Overlay, Tissue
from .knowledge import KnowledgeGraph
from .lesion_shapes import edge_alpha, lesion_box, lesion_hu, make_shape
from .scenario import LesionPlan
from .shapes import Path, ellipsoid_box, ellipsoid_rho, rot_z, tube_field

DUCT_FINDING = "pancreatic duct dilatation"


@dataclass
class DrawnLesion:
    plan: LesionPlan
    instance_id: int
    centre: np.ndarray  # world mm, the centre it was drawn around
    part: str | None
    box: Box
    station: str | None = None
    near_organ: str | None = None


def _bbox(mask: np.ndarray, pad: int = 1) -> tuple[slice, slice, slice] | None:
    idx = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
    if any(len(i) == 0 for i in idx):
        return None
    return tuple(slice(max(0, int(i[0]) - pad), min(n, int(i[-1]) + 1 + pad)) for i, n in zip(idx, mask.shape))


class LesionPainter:
    """Draws the objects of a scenario; keeps the lesions map, overlays and what was drawn."""

    def __init__(self, anatomy: Anatomy, table: HUTable, kg: KnowledgeGraph, rng: np.random.Generator):
        self.anatomy = anatomy
        self.grid = anatomy.grid
        self.canvas = anatomy.canvas
        self.table = table
        self.kg = kg
        self.rng = rng
        self.lesions = np.zeros(self.grid.shape, dtype=np.uint8)
        self.overlays: list[Overlay] = []
        self.drawn: list[DrawnLesion] = []

    # -- centres -------------------------------------------------------------------------------

    def _coords(self, sl) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        box = self.grid.box_from_slices(sl)
        return box.x, box.y, box.z

    def _away_from_others(self, sl, radius: float) -> np.ndarray:
        x, y, z = self._coords(sl)
        ok = np.ones(tuple(s.stop - s.start for s in sl), dtype=bool)
        for d in self.drawn:
            gap = radius + d.plan.diameter_mm / 2.0 + 4.0
            ok &= (x - d.centre[0]) ** 2 + (y - d.centre[1]) ** 2 + (z - d.centre[2]) ** 2 > gap ** 2
        return ok

    def _pick(self, region: np.ndarray, radius: float, deep: bool) -> np.ndarray | None:
        """World centre inside ``region`` (full-volume bool), deep inside it when ``deep``."""
        sl = _bbox(region)
        if sl is None:
            return None
        crop = region[sl] & (self.lesions[sl] == 0) & self._away_from_others(sl, radius)
        if not crop.any():
            return None
        if deep:
            depth = distance_transform_edt(np.pad(crop, 1), sampling=self.grid.spacing)[1:-1, 1:-1, 1:-1]
            target = min(0.6 * radius, 0.75 * float(depth.max()))
            cand = np.argwhere(depth >= target)
            weights = depth[tuple(cand.T)]
        else:
            cand = np.argwhere(crop)
            weights = np.ones(len(cand))
        if len(cand) == 0:
            return None
        pick = cand[int(self.rng.choice(len(cand), p=weights / weights.sum()))]
        ijk = pick + np.array([s.start for s in sl])
        return self.grid.to_world(ijk)

    def _part_choices(self, organ: str, plan: LesionPlan) -> list[str]:
        if plan.part is not None:
            return [plan.part]
        weights = dict(self.kg.organs[organ].part_weights)
        if DUCT_FINDING in plan.others:
            weights.pop("pancreas_tail", None)  # the duct dilates upstream of a head or body tumor
        names = list(weights)
        present = [n for n in names if np.any(self.canvas.parts == lid(n))]
        if not present:
            return []
        w = np.array([weights[n] for n in present])
        order = self.rng.choice(len(present), size=len(present), replace=False, p=w / w.sum())
        return [present[i] for i in order]

    # -- drawing -------------------------------------------------------------------------------

    def _allowed(self, box: Box, organ_id: int | None, extra_tissues: tuple[int, ...]) -> np.ndarray:
        tissue = self.canvas.tissue[box.sl]
        ok = tissue == Tissue.FAT
        for t in extra_tissues:
            ok |= tissue == t
        if organ_id is not None:
            ok |= self.canvas.organs[box.sl] == organ_id
        return ok & (self.lesions[box.sl] == 0)

    def draw_in_organ(self, plan: LesionPlan, tries: int = 8) -> DrawnLesion | None:
        """A primary lesion or metastasis in its organ; None when it does not fit anywhere."""
        organ = plan.organ
        info = self.kg.organs[organ]
        # at least three in-plane voxels across, or partial volume would hide the lesion's density
        plan.diameter_mm = max(plan.diameter_mm, 3.0 * max(self.grid.spacing[:2]))
        organ_id = lid(organ)
        extra = ()
        nominal_ml = np.pi / 6.0 * plan.diameter_mm ** 3 / 1000.0
        for part in self._part_choices(organ, plan):
            region = self.canvas.parts == lid(part)
            if info.hollow:
                region &= self.canvas.tissue == Tissue.GI_WALL
            for _ in range(tries):
                centre = self._pick(region, plan.diameter_mm / 2.0, deep=not info.hollow)
                if centre is None:
                    break
                shape = make_shape(plan.shape, plan.diameter_mm, self.rng)
                box = lesion_box(self.grid, centre, shape, plan.boundary)
                signed, rho = shape.fields(box, centre)
                allowed = self._allowed(box, organ_id, extra)
                mask = (signed <= 0) & allowed
                if mask.sum() * self.grid.voxel_mm3 / 1000.0 < 0.45 * nominal_ml or mask.sum() < 2:
                    continue
                self._seat(box, signed, mask, info, organ_id, lid(part))
                reference = self.table[Tissue[info.parenchyma_tissue]]
                value = lesion_hu(plan.density, plan.others, rho, reference, self.rng)
                value += self.anatomy.texture[box.sl] * np.float32(6.0)
                drawn = self._commit(plan, box, mask, edge_alpha(signed, plan.boundary) * allowed, value,
                                     organ_id, lid(part), centre, part)
                if "calcification" in plan.others:
                    self._calcification(drawn, shape.extent)
                if DUCT_FINDING in plan.others:
                    self._dilated_duct(drawn, shape.extent)
                return drawn
        return None

    def draw_node(self, plan: LesionPlan, organ: str, anchor: np.ndarray) -> DrawnLesion | None:
        """An enlarged node in fat beside ``organ``, as near ``anchor`` (the primary) as fits."""
        b = plan.diameter_mm / 2.0
        ratio = self.rng.uniform(*self.kg.lymph_node["long_to_short"])
        semi = (b * ratio, b, b * self.rng.uniform(1.0, ratio))
        rot = rot_z(self.rng.uniform(0.0, 180.0))
        for reach in (55.0, 90.0):
            search = self.grid.box(anchor - reach, anchor + reach)
            if search is None:
                return None
            fat = (self.canvas.tissue[search.sl] == Tissue.FAT) & (self.lesions[search.sl] == 0)
            fat &= self._away_from_others(search.sl, b)
            if not fat.any():
                continue
            depth = distance_transform_edt(fat, sampling=self.grid.spacing)
            organ_dist = distance_transform_edt(self.canvas.organs[search.sl] != lid(organ), sampling=self.grid.spacing)
            ok = (depth >= 1.1 * b + 0.5 * max(self.grid.spacing)) & (organ_dist <= b + 0.6 * reach)
            cand = np.argwhere(ok)
            if len(cand) == 0:
                continue
            weights = np.exp(-organ_dist[tuple(cand.T)] / 8.0)
            for _ in range(6):
                pick = cand[int(self.rng.choice(len(cand), p=weights / weights.sum()))]
                centre = self.grid.to_world(pick + np.array([s.start for s in search.sl]))
                box = ellipsoid_box(self.grid, centre, semi, rot, pad=2.0)
                rho = ellipsoid_rho(box, centre, semi, rot)
                allowed = self._allowed(box, None, ())
                mask = (rho <= 1) & allowed
                if mask.sum() < 0.8 * (rho <= 1).sum() or mask.sum() < 2:
                    continue
                signed = (rho - 1.0) * np.float32(b)
                value = lesion_hu(None, (), rho, 0.0, self.rng) + self.anatomy.texture[box.sl] * np.float32(4.0)
                drawn = self._commit(plan, box, mask, edge_alpha(signed, "well-defined") * allowed, value,
                                     None, None, centre, None)
                drawn.station = self.kg.organs[organ].station
                drawn.near_organ = organ
                return drawn
        return None

    def _seat(self, box: Box, signed: np.ndarray, mask: np.ndarray, info, organ_id: int, part_id: int) -> None:
        """Give the lesion a one-voxel rim of its organ's own tissue where it bulges into fat or
        into a lumen (capsule, thickened wall), and turn gas and stool next to an intraluminal mass
        into fluid. Partial volume at its edge then mixes lesion with parenchyma (the density
        reference), not with fat or gas, so small lesions keep their density class."""
        tissue = self.canvas.tissue[box.sl]
        organs = self.canvas.organs[box.sl]
        step = float(max(self.grid.spacing))
        rim = (signed > 0) & (signed <= np.float32(1.2 * step)) & (self.lesions[box.sl] == 0)
        outside = rim & (tissue == Tissue.FAT)
        inside = rim & (organs == organ_id) & np.isin(tissue, (Tissue.GI_AIR, Tissue.GI_FLUID, Tissue.STOOL))
        parenchyma = Tissue[info.parenchyma_tissue]
        tissue[outside | inside] = parenchyma
        organs[outside] = organ_id
        self.canvas.parts[box.sl][outside] = part_id
        if info.hollow:
            near = (signed <= np.float32(3.0 + 1.5 * step)) & ~mask
            tissue[near & np.isin(tissue, (Tissue.GI_AIR, Tissue.STOOL))] = Tissue.GI_FLUID

    def _commit(self, plan, box, mask, alpha, value, organ_id, part_id, centre, part) -> DrawnLesion:
        iid = len(self.drawn) + 1
        self.lesions[box.sl][mask] = iid
        if organ_id is not None:
            self.canvas.organs[box.sl][mask] = organ_id
            grown = mask & (self.canvas.parts[box.sl] == 0)
            self.canvas.parts[box.sl][grown] = part_id
        self.canvas.tissue[box.sl][mask] = Tissue.LESION
        self.overlays.append(Overlay(box, alpha.astype(np.float32), value))
        drawn = DrawnLesion(plan, iid, np.asarray(centre, dtype=np.float64), part, box)
        self.drawn.append(drawn)
        return drawn

    def remove(self, drawn: DrawnLesion) -> None:
        """Undo a drawn object (a node that measured too small): free its voxels and overlay.
        Only valid for nodes, which never relabel organs."""
        sel = self.lesions[drawn.box.sl] == drawn.instance_id
        self.lesions[drawn.box.sl][sel] = 0
        self.canvas.tissue[drawn.box.sl][sel] = Tissue.FAT
        self.overlays = [ov for ov in self.overlays if ov.box is not drawn.box]
        self.drawn.remove(drawn)

    def _calcification(self, drawn: DrawnLesion, extent: float) -> None:
        """A small bright focus near the centre (radius at least ~1.2 voxels so it survives blur)."""
        r = max(2.5, 0.6 * max(self.grid.spacing))
        offset = self.rng.uniform(-0.25, 0.25, 3) * extent
        c = drawn.centre + offset
        box = ellipsoid_box(self.grid, c, (r, r, r), pad=1.0)
        inside = (ellipsoid_rho(box, c, (r, r, r)) <= 1) & (self.lesions[box.sl] == drawn.instance_id)
        self.overlays.append(Overlay(box, inside.astype(np.float32), float(self.rng.uniform(450.0, 700.0))))

    def _dilated_duct(self, drawn: DrawnLesion, extent: float) -> None:
        """Fluid-density main duct from the tumor towards the tail, inside the pancreas only."""
        path = self.anatomy.paths["pancreas"]
        t0 = path.t[int(np.argmin(np.linalg.norm(path.points - drawn.centre, axis=1)))]
        keep = path.t >= t0
        if keep.sum() < 3:
            return
        r = max(2.5, 0.55 * max(self.grid.spacing))
        duct = Path(path.points[keep], np.full(int(keep.sum()), r), path.t[keep], path.knots)
        tf = tube_field(self.grid, duct, want_t=False)
        if tf is None:
            return
        inside = (tf.q <= 1) & (self.canvas.organs[tf.box.sl] == lid("pancreas")) & (self.lesions[tf.box.sl] == 0)
        self.overlays.append(Overlay(tf.box, inside.astype(np.float32), self.table[Tissue.DUCT]))

