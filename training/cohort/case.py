"""One synthetic case end to end: anatomy -> scenario -> lesions -> CT -> measured ground truth,
and its case folder on disk (ct / organs / parts / lesions NIfTI + ground_truth.json).

Every random choice comes from ``numpy.random.default_rng([seed, stream])`` with a fixed stream
per stage, so the same seed gives identical arrays and truth on any machine.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from inference.case_folder import CT_NAMES, ORGANS_NAMES, PARTS_NAMES
from inference.errors import InputError
from inference.labels import merged_labels
from inference.segmentation.organ_masks import OrganMasks

from .anatomy import build_anatomy
from .ground_truth import CaseTruth, LesionTruth, read_truth
from .grid import Grid, lid
from .intensities import Tissue, render_ct, sample_hu_table
from .knowledge import KnowledgeGraph, load_kg
from .lesions import DrawnLesion, LesionPainter
from .measure import interior_roi, majority_label, measure_mask
from .scenario import Scenario, demo_scenario, sample_scenario
from .staging import stage_case

DEFAULT_SHAPE = (128, 128, 64)
# the names every reader resolves a case folder by (inference.case_folder), plus the cohort's truth
CASE_CT, CASE_ORGANS, CASE_PARTS = CT_NAMES[0], ORGANS_NAMES[0], PARTS_NAMES[0]
CASE_FILES = (CASE_CT, CASE_ORGANS, CASE_PARTS, "lesions.nii.gz", "ground_truth.json")
MIN_ORGAN_ML = 8.0  # an organ smaller than this in the field of view gets no lesion


@dataclass(eq=False)
class SyntheticCase:
    """A generated case. ct: int16 HU (I, J, K); organs / parts / lesions: uint8 (I, J, K) on
    the same grid (merged organ ids, substructure ids, lesion instance ids)."""

    case_id: str
    seed: int
    grid: Grid
    ct: np.ndarray
    organs: np.ndarray
    parts: np.ndarray
    lesions: np.ndarray
    truth: CaseTruth

    @property
    def affine(self) -> np.ndarray:
        return np.asarray(self.truth.affine, dtype=np.float64)

    def organ_masks(self) -> OrganMasks:
        return OrganMasks(organs=self.organs, affine=self.affine, backend="synthetic", parts=self.parts,
                          details={"case_id": self.case_id})


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), stream])


def available_organs(organs: np.ndarray, grid: Grid, kg: KnowledgeGraph) -> set[str]:
    counts = np.bincount(organs.ravel(), minlength=256)
    return {name for name in kg.organs if counts[lid(name)] * grid.voxel_mm3 / 1000.0 >= MIN_ORGAN_ML}


def _draw(painter: LesionPainter, scenario: Scenario) -> Scenario:
    """Draw the plan; a case whose primary fits nowhere becomes normal (nothing else drawn)."""
    primaries = [d for d in (painter.draw_in_organ(p) for p in scenario.plans if p.kind == "primary") if d]
    if not primaries:
        return Scenario("normal")
    for plan in (p for p in scenario.plans if p.kind == "metastasis"):
        painter.draw_in_organ(plan)
    for plan in (p for p in scenario.plans if p.kind == "node"):
        painter.draw_node(plan, scenario.organ, primaries[0].centre)
    return scenario


def _truth_of(d: DrawnLesion, m, ct: np.ndarray, parts: np.ndarray, lesions: np.ndarray, ijk: np.ndarray,
              reference: float) -> LesionTruth:
    table = merged_labels()
    part_id = majority_label(parts[tuple(ijk.T)]) if d.plan.organ else 0
    roi = interior_roi(lesions[d.box.sl] == d.instance_id)
    return LesionTruth(
        instance_id=d.instance_id, kind=d.plan.kind, organ=d.plan.organ,
        substructure=table.by_id(part_id).name if part_id else None,
        centre_ras_mm=[round(float(v), 2) for v in m.centroid_mm], centre_voxel=list(m.centroid_voxel),
        diameter_mm=round(m.diameter_mm, 1), short_axis_mm=round(m.short_axis_mm, 1),
        volume_ml=round(m.volume_ml, 3), voxels=m.voxels, density=d.plan.density, shape=d.plan.shape,
        boundary=d.plan.boundary, others=list(d.plan.others),
        attenuation_hu=round(float(np.median(ct[d.box.sl][roi])), 1),
        reference_hu=round(reference, 1), pathology=d.plan.pathology, station=d.station, near_organ=d.near_organ)


def generate_case(seed: int, case_id: str = "case_0000", shape: tuple[int, int, int] = DEFAULT_SHAPE,
                  spacing: tuple[float, float, float] | None = None,
                  scenario: Scenario | str | None = None) -> SyntheticCase:
    """Generate one case. ``spacing`` defaults to the abdominal field of view (384 x 384 x
    256 mm) divided by ``shape``; ``scenario`` None samples one, "demo" is the bundled demo's."""
    kg = load_kg()
    grid = Grid(shape, spacing)
    anatomy = build_anatomy(grid, _rng(seed, 1))
    hu_rng = _rng(seed, 2)
    table = sample_hu_table(hu_rng)
    noise_sigma = float(hu_rng.uniform(10.0, 20.0))
    if scenario == "demo":
        scenario = demo_scenario(kg, _rng(seed, 3))
    elif scenario is None:
        scenario = sample_scenario(kg, _rng(seed, 3), available_organs(anatomy.canvas.organs, grid, kg))
    painter = LesionPainter(anatomy, table, kg, _rng(seed, 4))
    scenario = _draw(painter, scenario)
    # geometry first: nodes that came out no longer enlarged are not kept
    threshold = float(kg.lymph_node["enlarged_short_axis_mm"])
    measured = {}
    for d in list(painter.drawn):
        ijk = np.argwhere(painter.lesions[d.box.sl] == d.instance_id) + np.array([s.start for s in d.box.sl])
        m = measure_mask(grid, ijk)
        if d.plan.kind == "node" and m.short_axis_mm <= threshold:
            painter.remove(d)
            continue
        measured[d.instance_id] = (d, m, ijk)
    ct = render_ct(anatomy.canvas.tissue, table, anatomy.texture, painter.overlays, noise_sigma, grid.spacing,
                   _rng(seed, 5))
    canvas = anatomy.canvas
    groups: dict[str, list[LesionTruth]] = {"primary": [], "metastasis": [], "node": []}
    for d, m, ijk in measured.values():
        organ = kg.organs.get(d.plan.organ) if d.plan.organ else None
        reference = table[Tissue[organ.parenchyma_tissue]] if organ else 0.0
        groups[d.plan.kind].append(_truth_of(d, m, ct, canvas.parts, painter.lesions, ijk, reference))
    truth = _assemble(kg, grid, seed, case_id, scenario, groups, canvas, table, noise_sigma)
    return SyntheticCase(case_id, int(seed), grid, ct, canvas.organs, canvas.parts, painter.lesions, truth)


def _assemble(kg, grid, seed, case_id, scenario, groups, canvas, table, noise_sigma) -> CaseTruth:
    labels = merged_labels()
    path = kg.pathologies.get(scenario.pathology) if scenario.pathology else None
    organ_counts = np.bincount(canvas.organs.ravel(), minlength=256)
    part_counts = np.bincount(canvas.parts.ravel(), minlength=256)
    organs_present = [labels.by_id(i).name for i in np.flatnonzero(organ_counts) if i]
    parts_present = [labels.by_id(i).name for i in np.flatnonzero(part_counts) if i]
    lesions = groups["primary"] + groups["metastasis"]
    hit = {les.organ for les in lesions} | {les.substructure for les in lesions if les.substructure}
    truth = CaseTruth(
        case_id=case_id, seed=int(seed), shape=list(grid.shape), spacing=list(grid.spacing),
        affine=grid.affine.tolist(), category=scenario.category, primary_organ=scenario.organ,
        pathology=scenario.pathology, pathology_display=path.display if path else None,
        finding=path.finding if path else None, impression=path.impression if path else None,
        lesions=groups["primary"], metastases=groups["metastasis"], nodes=groups["node"],
        lesion_counts={o: sum(les.organ == o for les in lesions) for o in sorted({les.organ for les in lesions})},
        organ_abnormal={name: int(name in hit) for name in organs_present + parts_present},
        organs_present=organs_present, parts_present=parts_present,
        hu_reference={t.name: round(float(table.mean[int(t)]), 1) for t in Tissue},
        noise_sigma_hu=round(noise_sigma, 2))
    truth.tnm = stage_case(kg, scenario.pathology, truth.lesions, truth.nodes, truth.metastases)
    return truth


def _nifti(array: np.ndarray, affine: np.ndarray, what: str) -> nib.Nifti1Image:
    img = nib.Nifti1Image(array, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = f"tumorchain synthetic {what}".encode()[:79]
    return img


def write_case(case: SyntheticCase, folder: str | Path) -> Path:
    """Write the case folder (see CASE_FILES); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    aff = case.affine
    nib.save(_nifti(case.ct.astype(np.int16), aff, "CT HU"), folder / CASE_CT)
    nib.save(_nifti(case.organs.astype(np.uint8), aff, "organs"), folder / CASE_ORGANS)
    nib.save(_nifti(case.parts.astype(np.uint8), aff, "parts"), folder / CASE_PARTS)
    nib.save(_nifti(case.lesions.astype(np.uint8), aff, "lesions"), folder / "lesions.nii.gz")
    (folder / "ground_truth.json").write_text(case.truth.to_json())
    return folder


def read_case(folder: str | Path) -> SyntheticCase:
    """Load a case folder written by write_case; InputError names a missing or bad file."""
    folder = Path(folder)
    for name in CASE_FILES:
        if not (folder / name).is_file():
            raise InputError(folder / name, "missing: a synthetic case folder needs " + ", ".join(CASE_FILES))
    truth = read_truth(folder / "ground_truth.json")
    arrays = {}
    for name, dtype in (("ct", np.int16), ("organs", np.uint8), ("parts", np.uint8), ("lesions", np.uint8)):
        path = folder / f"{name}.nii.gz"
        try:
            img = nib.load(path)
            data = np.asarray(img.dataobj)
        except Exception as exc:  # nibabel raises many types for a broken file
            raise InputError(path, f"cannot read NIfTI: {exc}") from exc
        if data.dtype != dtype or data.shape != tuple(truth.shape):
            raise InputError(path, f"expected {np.dtype(dtype).name} {tuple(truth.shape)}, "
                                   f"got {data.dtype} {data.shape}")
        arrays[name] = data
    grid = Grid(tuple(truth.shape), tuple(truth.spacing))
    return SyntheticCase(truth.case_id, truth.seed, grid, arrays["ct"], arrays["organs"], arrays["parts"],
                         arrays["lesions"], truth)
