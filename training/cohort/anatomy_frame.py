"""The seeded body habitus of one case and the frame that maps reference anatomy to it.

All organ positions are written once, in a *reference* body (coordinates in mm, RAS: x to the
patient's right, y anterior, z superior; abdominal cavity 256 mm wide, its back wall at
y = -50, its front wall at y = +83). ``Frame.p`` maps them into the case's own body: the cavity
is stretched to the case's width and depth (front wall to vertebral bodies), the whole trunk
shifts craniocaudally, and every
organ gets its own small offset and size factor.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

REF_CAVITY_HALF_WIDTH = 128.0
REF_CAVITY_BACK = -50.0
REF_CAVITY_FRONT = 83.0

# Organs (and organ-like structures) that get their own seeded offset and size factor.
JITTERED = (
    "liver", "spleen", "kidney_right", "kidney_left", "gallbladder", "stomach", "pancreas",
    "duodenum", "colon", "esophagus", "heart", "adrenal_right", "adrenal_left", "small_bowel",
)


@dataclass
class BodyShape:
    """Outer body superellipse and wall layers (mm)."""

    half_width: float  # outer LR semi-axis
    half_depth: float  # outer AP semi-axis
    centre_y: float
    fat_front: float
    fat_side: float
    fat_back: float
    muscle: float  # anterior/lateral muscle wall
    back_wall: float  # posterior wall at the midline: spine, paraspinal muscles
    flank_wall: float  # posterior wall lateral to the paraspinal muscles

    @property
    def cavity_half_width(self) -> float:
        return self.half_width - self.fat_side - self.muscle

    @property
    def cavity_front(self) -> float:
        return self.centre_y + self.half_depth - self.fat_front - self.muscle

    @property
    def cavity_back(self) -> float:
        """Back of the abdominal cavity beside the spine (the flanks' thin posterior wall)."""
        return self.centre_y - self.half_depth + self.fat_back + self.flank_wall

    @property
    def spine_back(self) -> float:
        """Where the cavity meets the vertebral bodies: the anchor of the reference anatomy."""
        return self.centre_y - self.half_depth + self.fat_back + self.back_wall


@dataclass
class Frame:
    """Maps reference-anatomy coordinates into this case's body (world RAS mm)."""

    body: BodyShape
    dz: float  # craniocaudal shift of the whole trunk in the field of view
    offsets: dict[str, np.ndarray] = field(default_factory=dict)
    scales: dict[str, float] = field(default_factory=dict)

    @property
    def sx(self) -> float:
        return self.body.cavity_half_width / REF_CAVITY_HALF_WIDTH

    @property
    def sy(self) -> float:
        return (self.body.cavity_front - self.body.spine_back) / (REF_CAVITY_FRONT - REF_CAVITY_BACK)

    def p(self, x: float, y: float, z: float, organ: str | None = None) -> np.ndarray:
        """Reference point -> world point (mm), plus the organ's own offset."""
        world = np.array([
            x * self.sx,
            self.body.spine_back + (y - REF_CAVITY_BACK) * self.sy,
            z + self.dz,
        ])
        if organ is not None:
            world = world + self.offsets[organ]
        return world

    def pts(self, ctrl, organ: str | None = None) -> np.ndarray:
        return np.array([self.p(*c, organ=organ) for c in ctrl])

    def s(self, organ: str) -> float:
        """Size factor of an organ (body size times the organ's own jitter)."""
        return float(np.sqrt(self.sx * self.sy)) * self.scales[organ]

    def to_ref(self, x, y):
        """World (x, y) -> reference (x, y); arrays welcome."""
        return x / self.sx, REF_CAVITY_BACK + (y - self.body.spine_back) / self.sy

    def diaphragm_z(self, x, y):
        """World z of the diaphragm surface above world (x, y): right dome higher, posterior
        recesses lower, central tendon lower than the domes."""
        xr, yr = self.to_ref(x, y)
        dome = np.where(xr > 0, 108.0, 100.0)
        slope = np.where(yr < 0, 0.55, 0.12) * yr
        return dome + slope - 0.0035 * (np.abs(xr) - 65.0) ** 2 + self.dz


def sample_frame(rng: np.random.Generator) -> Frame:
    """Seeded habitus: body size and fat, trunk position, per-organ offsets and sizes."""
    half_width = rng.uniform(140.0, 172.0)
    half_depth = rng.uniform(103.0, 128.0)
    fat = rng.uniform(8.0, 32.0)
    body = BodyShape(
        half_width=half_width,
        half_depth=half_depth,
        centre_y=rng.uniform(-8.0, 4.0),
        fat_front=fat * rng.uniform(0.9, 1.3),
        fat_side=fat * rng.uniform(0.7, 1.0),
        fat_back=fat * rng.uniform(0.3, 0.6),
        muscle=rng.uniform(9.0, 14.0),
        back_wall=rng.uniform(52.0, 60.0),
        flank_wall=rng.uniform(16.0, 22.0),
    )
    frame = Frame(body=body, dz=rng.uniform(-14.0, 14.0))
    for name in JITTERED:
        frame.offsets[name] = rng.uniform(-7.0, 7.0, size=3)
        frame.scales[name] = rng.uniform(0.88, 1.12)
    return frame
