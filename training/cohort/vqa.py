"""All VQA samples of one case: the paper's four task families with the Table 1 subtasks.

Normal cases get organ_position, count and report (negative reasoning); benign lesions add the
other localization and attribute subtasks; malignant tumors add T, N and M."""
from __future__ import annotations

import numpy as np

from ..manifest import Sample
from .ground_truth import CaseTruth
from .knowledge import KnowledgeGraph, load_kg
from .vqa_attributes import attribute_samples
from .vqa_common import SampleFactory
from .vqa_localization import localization_samples
from .vqa_report import report_sample
from .vqa_tnm import tnm_samples


def case_samples(truth: CaseTruth, case_dir: str, kg: KnowledgeGraph | None = None) -> list[Sample]:
    """Samples of one case; ``case_dir`` is the case folder relative to the manifest's folder.
    Text choices (question wording, option order) come from the case seed, so they repeat."""
    kg = kg or load_kg()
    rng = np.random.default_rng([truth.seed, 6])
    f = SampleFactory(truth, case_dir)
    return (localization_samples(truth, f, rng) + attribute_samples(truth, kg, f, rng) + tnm_samples(truth, kg, f, rng)
            + [report_sample(truth, kg, f, rng)])
