"""What lies under the mouse: world position, HU and organ (and substructure) name."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from viewer.slice_geometry import world_to_letters


@dataclass(frozen=True)
class ProbeResult:
    world: tuple[float, float, float]  # RAS mm
    voxel: tuple[int, int, int]  # nearest voxel (i, j, k)
    inside: bool  # within the volume
    hu: int | None
    label_id: int  # organ id (0 = none)
    organ: str  # display name ('' = none)
    part: str  # substructure display name ('' = none)

    def text(self) -> str:
        """One line for a status bar or view corner, e.g. 'R 12.3  A 4.5  S 100.2 | 54 HU | liver'."""
        pos = world_to_letters(np.asarray(self.world))
        if not self.inside:
            return f"{pos} | outside the volume"
        name = self.organ or "no organ"
        if self.part:
            name += f" ({self.part})"
        return f"{pos} | {self.hu} HU | {name}"


def probe(state, world: np.ndarray) -> ProbeResult | None:
    """Sample the state's CT and masks at a world point (nearest voxel); None without a case."""
    ct = state.ct
    if ct is None:
        return None
    world = np.asarray(world, dtype=float)
    vox = np.rint(ct.world_to_voxel(world)[0]).astype(int)
    inside = bool(np.all(vox >= 0) and np.all(vox < np.asarray(ct.shape)))
    hu, lid, organ, part = None, 0, "", ""
    if inside:
        i, j, k = (int(v) for v in vox)
        hu = int(ct.hu[i, j, k])
        masks = state.masks
        if masks is not None:
            lid = int(masks.organs[i, j, k])
            organ = state.label_name(lid) if lid else ""
            if masks.parts is not None and masks.parts[i, j, k]:
                part = state.label_name(int(masks.parts[i, j, k]))
    return ProbeResult(tuple(float(c) for c in world), tuple(int(v) for v in vox), inside, hu,  # type: ignore[arg-type]
                       lid, organ, part)
