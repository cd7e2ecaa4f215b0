"""Key images: for each IIR round, the axial CT slice through its ROI organs' largest cross-section,
with the organ masks outlined in their label colours (the interleaved visual evidence that the
report shows beside the round's text). Headless: numpy + scipy + Pillow only.

Display follows the radiological convention whatever the file's voxel order: the voxel axis
closest to superior-inferior is the slice normal; of the two in-plane axes the one closest to
right-left runs horizontally with the patient's right on the image's left, and anterior is up.
Everything is derived from the CTVolume affine (voxel -> RAS mm).

The GUI may pass its own screenshots instead (``screenshot_key_image``); their geometry (slice,
world position) is still computed here so the report can cite it.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from inference.ct_volume import CTVolume
from inference.segmentation.organ_masks import OrganMasks

SOFT_TISSUE = (40.0, 400.0)  # window level, width (HU)
LEGEND_ROW = 18


@dataclass(frozen=True)
class SliceChoice:
    """Where a key image is cut. axis: voxel axis normal to the slice; index: voxel index on it;
    h_axis / v_axis: voxel axes shown horizontally / vertically; flip_h / flip_v: whether the
    display reverses them (radiological convention); world_mm: RAS mm of the ROI centroid on the
    slice (slice centre when the ROI is empty); area_mm2: ROI cross-section on the slice."""

    axis: int
    index: int
    h_axis: int
    v_axis: int
    flip_h: bool
    flip_v: bool
    labels: tuple[int, ...]
    world_mm: tuple[float, float, float]
    area_mm2: float


@dataclass
class KeyImage:
    """A round's key image: PNG bytes and where in the CT it was cut.

    size: (width, height) of the CT area in pixels; the PNG may be taller (legend band below).
    """

    round_index: int
    png: bytes
    choice: SliceChoice
    size: tuple[int, int]
    source: str = "rendered"  # or "screenshot"
    caption: str = ""
    legend: list[tuple[int, str]] = field(default_factory=list)  # (label id, display name)

    def pixel_to_voxel(self, x: float, y: float, shape: tuple[int, int, int]) -> np.ndarray:
        """Fractional voxel index (i, j, k) under PNG pixel centre (x, y) of a rendered image."""
        c = self.choice
        w, h = self.size
        n_h, n_v = shape[c.h_axis], shape[c.v_axis]
        u = (x + 0.5) * n_h / w - 0.5
        v = (y + 0.5) * n_v / h - 0.5
        ijk = np.zeros(3)
        ijk[c.axis] = c.index
        ijk[c.h_axis] = (n_h - 1 - u) if c.flip_h else u
        ijk[c.v_axis] = (n_v - 1 - v) if c.flip_v else v
        return ijk


def display_axes(affine: np.ndarray) -> tuple[int, int, int, bool, bool]:
    """(slice axis, horizontal axis, vertical axis, flip_h, flip_v) for an axial radiological view."""
    r = np.asarray(affine, dtype=np.float64)[:3, :3]
    r = r / np.linalg.norm(r, axis=0)
    axis = int(np.argmax(np.abs(r[2])))
    rest = [a for a in range(3) if a != axis]
    h = max(rest, key=lambda a: abs(r[0, a]))
    v = rest[0] if rest[1] == h else rest[1]
    # columns run toward the patient's left (-x in RAS); rows toward posterior (-y)
    return axis, h, v, bool(r[0, h] > 0), bool(r[1, v] > 0)


def choose_slice(ct: CTVolume, masks: OrganMasks, labels: list[int], focus: int | None = None) -> SliceChoice:
    """The axial slice where the union of ``labels`` has its largest cross-section; with ``focus``
    (one of them, e.g. the organ with the highest P(abnormal)), where that organ alone has it, so
    a small flagged organ is not lost behind a large neighbour.

    Labels without voxels are ignored; with none left, the slice with the most organ voxels
    (an overview); with no organ at all, the middle slice.
    """
    axis, h, v, fh, fv = display_axes(ct.affine)
    present: list[int] = []
    roi = np.zeros(masks.shape, dtype=bool)
    for lab in labels:
        m = masks.mask(lab)
        if lab not in present and m.any():
            present.append(lab)
            roi |= m
    if not present:
        roi = masks.organs > 0
    other = tuple(a for a in range(3) if a != axis)
    target = roi
    if focus is not None and focus in present:
        target = masks.mask(focus)
    counts = np.count_nonzero(target, axis=other)
    index = int(np.argmax(counts)) if counts.any() else ct.shape[axis] // 2
    sl = np.take(target, index, axis=axis)
    sp = ct.spacing
    if sl.any():
        centre2d = np.argwhere(sl).mean(axis=0)
    else:
        centre2d = (np.array(sl.shape) - 1) / 2.0
    ijk = np.zeros(3)
    ijk[axis] = index
    ijk[list(other)] = centre2d
    world = ct.voxel_to_world(ijk)[0]
    return SliceChoice(axis, index, h, v, fh, fv, tuple(present), tuple(float(x) for x in world),
                       float(sl.sum()) * sp[other[0]] * sp[other[1]])


def oriented_slice(volume: np.ndarray, c: SliceChoice) -> np.ndarray:
    """2D (rows = vertical, columns = horizontal) display-oriented cut of a 3D array."""
    index = [slice(None)] * 3
    index[c.axis] = c.index
    sl = volume[tuple(index)]  # a view: only the 2D result below is copied
    other = [a for a in range(3) if a != c.axis]
    if other.index(c.h_axis) == 0:  # remaining axes come (h, v): rows must be v
        sl = sl.T
    if c.flip_h:
        sl = sl[:, ::-1]
    if c.flip_v:
        sl = sl[::-1, :]
    return np.ascontiguousarray(sl)


def label_slice(masks: OrganMasks, label_id: int, c: SliceChoice) -> np.ndarray:
    """Display-oriented boolean 2D mask of one label (cut first, compared after: no 3D temporary)."""
    source = masks.parts if label_id >= 100 else masks.organs
    if source is None:
        return np.zeros(oriented_slice(masks.organs, c).shape, dtype=bool)
    return oriented_slice(source, c) == label_id


def render_key_image(ct: CTVolume, masks: OrganMasks, labels: list[int], *, round_index: int = 0,
                     size: int = 512, window: tuple[float, float] = SOFT_TISSUE, outline_px: int = 2,
                     caption: str = "", focus: int | None = None) -> KeyImage:
    """Render the key image of ``labels`` (mask label ids) as a PNG.

    The CT area is ``size`` pixels on its longer physical side, square millimetres kept; below
    it a legend band lists each outlined label in its colour. Orientation letters and a scale
    bar are drawn on the image.
    """
    c = choose_slice(ct, masks, labels, focus)
    sp = ct.spacing
    hu2d = oriented_slice(ct.hu, c).astype(np.float32)
    n_v, n_h = hu2d.shape
    mm_w, mm_h = n_h * sp[c.h_axis], n_v * sp[c.v_axis]
    scale = size / max(mm_w, mm_h)  # px per mm
    w, h = max(1, round(mm_w * scale)), max(1, round(mm_h * scale))
    level, width = window
    grey = np.clip((hu2d - (level - width / 2)) / width * 255.0, 0, 255).astype(np.uint8)
    img = Image.fromarray(grey, mode="L").resize((w, h), Image.BILINEAR).convert("RGB")
    rgb = np.asarray(img).copy()

    table = masks.table
    cuts = {lab: label_slice(masks, lab, c) for lab in c.labels}
    shown = sorted(c.labels, key=lambda lab: -int(cuts[lab].sum()))  # small organs drawn last, on top
    for lab in shown:
        m2d = cuts[lab]
        if not m2d.any():
            continue
        big = np.asarray(Image.fromarray(m2d.astype(np.uint8) * 255).resize((w, h), Image.NEAREST)) > 0
        edge = big & ~ndimage.binary_erosion(big, iterations=outline_px, border_value=0)
        rgb[edge] = table.by_id(lab).colour

    legend = [(lab, table.by_id(lab).display) for lab in shown]
    band = LEGEND_ROW * max(1, len(legend)) + 8
    canvas = Image.new("RGB", (w, h + band), (24, 24, 24))
    canvas.paste(Image.fromarray(rgb), (0, 0))
    draw = ImageDraw.Draw(canvas)
    font = _font(max(11, size // 40))
    _orientation_letters(draw, w, h, font)
    _scale_bar(draw, w, h, scale, font)
    y = h + 4
    if not legend:
        draw.text((6, y), "no ROI organ on this case: overview slice", fill=(220, 220, 220), font=font)
    for lab, name in legend:
        draw.rectangle([6, y + 3, 18, y + 13], fill=table.by_id(lab).colour)
        draw.text((24, y), f"{name} (label {lab})", fill=(235, 235, 235), font=font)
        y += LEGEND_ROW
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", optimize=False, compress_level=6)
    return KeyImage(round_index, buf.getvalue(), c, (w, h), "rendered", caption, legend)


def screenshot_key_image(png: bytes | str | Path, ct: CTVolume, masks: OrganMasks, labels: list[int], *,
                         round_index: int = 0, caption: str = "", focus: int | None = None) -> KeyImage:
    """Wrap a caller's picture (PNG bytes or a file) as a round's key image; the geometry cited
    with it is the same slice choice a rendered image would use."""
    from inference.errors import InputError

    where = None if isinstance(png, bytes) else Path(png)
    try:
        source = png if isinstance(png, bytes) else Path(png).read_bytes()
    except OSError as exc:
        raise InputError(where, f"cannot read the key image for round {round_index}: {exc.strerror or exc}") from None
    try:
        with Image.open(io.BytesIO(source)) as im:
            im.load()
            if im.format != "PNG":
                buf = io.BytesIO()
                im.convert("RGB").save(buf, format="PNG")
                source = buf.getvalue()
            size = im.size
    except (OSError, ValueError) as exc:
        raise InputError(where, f"the key image for round {round_index} is not a readable picture ({exc})") from None
    return KeyImage(round_index, source, choose_slice(ct, masks, labels, focus), size, "screenshot", caption)


def _font(px: int):
    try:
        return ImageFont.load_default(size=px)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _shadow_text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, font, anchor: str) -> None:
    x, y = xy
    draw.text((x + 1, y + 1), text, fill=(0, 0, 0), font=font, anchor=anchor)
    draw.text((x, y), text, fill=(255, 255, 255), font=font, anchor=anchor)


def _orientation_letters(draw: ImageDraw.ImageDraw, w: int, h: int, font) -> None:
    _shadow_text(draw, (4, h / 2), "R", font, "lm")
    _shadow_text(draw, (w - 4, h / 2), "L", font, "rm")
    _shadow_text(draw, (w / 2, 3), "A", font, "mt")
    _shadow_text(draw, (w / 2, h - 3), "P", font, "mb")


def _scale_bar(draw: ImageDraw.ImageDraw, w: int, h: int, px_per_mm: float, font) -> None:
    target = w / 5 / px_per_mm
    mm = max((v for v in (5, 10, 20, 50, 100, 200) if v <= max(target, 5)), default=5)
    length = mm * px_per_mm
    x0, y0 = 8, h - 12
    draw.line([(x0, y0), (x0 + length, y0)], fill=(255, 255, 255), width=2)
    for x in (x0, x0 + length):
        draw.line([(x, y0 - 4), (x, y0 + 2)], fill=(255, 255, 255), width=1)
    _shadow_text(draw, (x0 + length + 4, y0), f"{mm} mm", font, "lm")
