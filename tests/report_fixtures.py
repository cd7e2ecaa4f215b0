"""A small synthetic case for the report tests and the export benchmark: a CT written as a real
DICOM series (CT Image Storage headers, with identifiers that the de-identification tests hunt
for) loaded back through load_ct, organ and substructure masks on its grid, and a RunRecord with
three IIR rounds built from the run-record dataclasses."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid

from inference.ct_io import load_ct
from inference.ct_volume import CTVolume
from inference.iir.conclusion import parse_conclusion
from inference.iir.rounds import ExaminedOrgan, Round, RoundTimings, SkippedOrgan
from inference.labels import merged_labels
from inference.run_record import CaseInfo, ModelInfo, RunRecord, RunSettings, SegmentationInfo
from inference.segmentation.organ_masks import OrganMasks

PATIENT = {"name": "Doeberg^Janetta", "id": "PID-778899", "birth": "19610203"}
LIVER, PANCREAS, SPLEEN, KIDNEY_L = 5, 7, 1, 3
PANCREAS_HEAD = 111
ROUND_TEXTS = [
    "The pancreas shows a hypodense mass near the head. The liver needs a look for spread. "
    "Thus, the answer is pancreas.",
    "Within the pancreas the lesion sits in the pancreatic head, 28 mm, ill-defined margins. "
    "Thus, the answer is pancreatic head.",
    "The liver shows no focal lesion; the spleen is unremarkable. Considering all rounds, the mass is "
    "a pancreatic head tumour without liver metastasis. Thus, the answer is pancreatic head cancer, M0.",
]


def synthetic_arrays(shape: tuple[int, int, int] = (64, 56, 24), spacing=(1.5, 1.5, 3.0)):
    """(hu int16, organs uint8, parts uint8, affine) of a tiny abdomen in a DICOM-like voxel order
    (i -> patient left, j -> posterior, k -> superior: the LPS grid a DICOM series loads as)."""
    ni, nj, nk = shape
    i, j, k = np.meshgrid(np.arange(ni), np.arange(nj), np.arange(nk), indexing="ij")
    x, y, z = (i - ni / 2) / (ni / 2), (j - nj / 2) / (nj / 2), (k - nk / 2) / (nk / 2)
    hu = np.full(shape, -1000, dtype=np.int16)
    body = x**2 / 0.9**2 + y**2 / 0.8**2 < 1
    hu[body] = 20
    organs = np.zeros(shape, dtype=np.uint8)
    liver = body & ((x + 0.45) ** 2 / 0.12 + (y + 0.1) ** 2 / 0.15 + z**2 / 0.6 < 1)  # patient right = low i
    organs[liver] = LIVER
    pancreas = body & ((x - 0.05) ** 2 / 0.08 + (y - 0.05) ** 2 / 0.02 + (z + 0.1) ** 2 / 0.15 < 1)
    organs[pancreas] = PANCREAS
    spleen = body & ((x - 0.55) ** 2 / 0.03 + (y - 0.2) ** 2 / 0.04 + (z - 0.2) ** 2 / 0.2 < 1)
    organs[spleen] = SPLEEN
    kidney = body & ((x - 0.4) ** 2 / 0.02 + (y - 0.5) ** 2 / 0.02 + (z + 0.3) ** 2 / 0.1 < 1)
    organs[kidney] = KIDNEY_L
    hu[organs == LIVER] = 60
    hu[organs == PANCREAS] = 45
    hu[organs == SPLEEN] = 50
    hu[organs == KIDNEY_L] = 150
    parts = np.zeros(shape, dtype=np.uint8)
    parts[pancreas & (x < 0.0)] = PANCREAS_HEAD  # head: toward the patient's right
    affine = np.array([[-spacing[0], 0, 0, 60.0], [0, -spacing[1], 0, 40.0], [0, 0, spacing[2], -200.0],
                       [0, 0, 0, 1]])
    return hu, organs, parts, affine


def write_dicom_case(folder: Path, shape=(64, 56, 24)) -> Path:
    """Write the synthetic CT as a DICOM series in a folder whose name carries patient identifiers
    (as exported folders often do) and return the folder."""
    from dicom_factory import write_series

    hu, _, _, affine = synthetic_arrays(shape)
    series = folder / f"{PATIENT['name'].replace('^', '_')}_{PATIENT['id']}"
    write_series(series, hu, affine, extra={
        "PatientName": PATIENT["name"], "PatientID": PATIENT["id"], "PatientBirthDate": PATIENT["birth"],
        "PatientSex": "F", "AccessionNumber": "ACC5566", "StudyTime": "101500", "StudyID": "S1",
        "SliceThickness": 5.0,  # thicker than the 3 mm spacing, as reconstructions often are
        "ReferringPhysicianName": "Refer^Rita", "InstitutionName": "Hospital of Doeberg",
        "StudyInstanceUID": generate_uid(),  # not the factory's default, a prefix of every pydicom UID
    })
    return series


def load_case(folder: Path, shape=(64, 56, 24)) -> tuple[CTVolume, OrganMasks]:
    """(CTVolume loaded through load_ct, OrganMasks on its grid)."""
    ct = load_ct(write_dicom_case(folder, shape))
    _, organs, parts, affine = synthetic_arrays(shape)
    assert np.allclose(ct.affine, affine, atol=1e-3), "fixture grid and loaded grid differ"
    return ct, OrganMasks(organs=organs, affine=ct.affine, backend="synthetic", parts=parts)


def nifti_like(ct: CTVolume) -> CTVolume:
    """The same volume as if it came from a NIfTI file (no DICOM identity)."""
    return CTVolume(hu=ct.hu, affine=ct.affine, source_path=Path("case.nii.gz"))


def _organ(label_id: int, prob: float, voxels: int, mask_label: int | None = None, fallback=None) -> ExaminedOrgan:
    t = merged_labels()
    lab = t.by_id(label_id)
    m = t.by_id(mask_label or label_id)
    return ExaminedOrgan(label_id=label_id, name=lab.name, display=lab.display, mask_label=m.id,
                         mask_name=m.name, abnormal_prob=prob, n_tokens=32, fallback=fallback, voxels=voxels)


def make_run(ct: CTVolume, masks: OrganMasks) -> RunRecord:
    """Three rounds: round 1 global (no organ tokens), round 2 pancreas, round 3 pancreatic head
    (substructure mask) + liver; conclusion parsed from round 3."""
    n = lambda lab: int(masks.mask(lab).sum())  # noqa: E731
    rounds = [
        Round(index=1, prompt="<ct> What is the most likely diagnosis?", text=ROUND_TEXTS[0],
              token_ids=[1, 2, 3], stop_reason="eos", organs=[], named_organs=["pancreas", "liver"],
              next_organs=["pancreas"], skipped_organs=[SkippedOrgan("liver", "examined later", LIVER)],
              timings=RoundTimings(prefill_ms=120.0, decode_ms=800.0, prompt_tokens=300, generated_tokens=40)),
        Round(index=2, prompt="The question requires greater attention to pancreas. <organ_feature>",
              text=ROUND_TEXTS[1], token_ids=[4, 5], stop_reason="eos",
              organs=[_organ(PANCREAS, 0.91, n(PANCREAS))], named_organs=["pancreas_head"],
              next_organs=["pancreas_head", "liver"],
              timings=RoundTimings(organ_tokens_ms=5.0, prefill_ms=30.0, decode_ms=700.0)),
        Round(index=3, prompt="The question requires greater attention to pancreatic head. <organ_feature> "
              "The question requires greater attention to liver. <organ_feature>", text=ROUND_TEXTS[2],
              token_ids=[6], stop_reason="eos",
              organs=[_organ(PANCREAS_HEAD, 0.88, n(PANCREAS_HEAD)), _organ(LIVER, 0.07, n(LIVER))],
              named_organs=["liver", "spleen"], next_organs=[],
              timings=RoundTimings(organ_tokens_ms=6.0, prefill_ms=35.0, decode_ms=900.0)),
    ]
    return RunRecord(
        case=CaseInfo(case_id=Path(ct.source_path).name, source_path=str(ct.source_path),
                      content_hash=ct.content_hash(), shape=list(ct.shape), spacing_mm=list(ct.spacing),
                      series_uid=ct.series_uid, study_instance_uid=ct.study.study_instance_uid),
        segmentation=SegmentationInfo(backend=masks.backend, mask_hash=masks.content_hash(),
                                      labels_present=[merged_labels().by_id(i).name for i in masks.present_ids()]),
        model=ModelInfo(path="/models/tumorchain-demo", name="tumorchain-demo", weight_hash="0" * 64),
        question="What is the most likely diagnosis?", task=None,
        settings=RunSettings(max_rounds=4, include_negated=True, max_new_tokens=256, temperature=0.0,
                             top_p=1.0, top_k=0, seed=0),
        rounds=rounds, stop_reason="no_new_organ", conclusion=parse_conclusion(ROUND_TEXTS[2]),
        timings={"total_ms": 2600.0}, tool_version="0.1.0",
    )
