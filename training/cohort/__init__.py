"""Seeded synthetic tumor cohort: abdominal CT volumes with organ, substructure and lesion
masks, measured ground truth, TNM stages and chain-of-thought VQA samples (see generate.py)."""
from __future__ import annotations

from .case import SyntheticCase, generate_case, read_case, write_case
from .ground_truth import GENERATOR_VERSION, CaseTruth, LesionTruth, StageTruth, read_truth
from .knowledge import KnowledgeGraph, load_kg
from .vqa import case_samples

__all__ = ["SyntheticCase", "generate_case", "read_case", "write_case", "CaseTruth", "LesionTruth", "StageTruth",
           "read_truth", "GENERATOR_VERSION", "KnowledgeGraph", "load_kg", "case_samples"]
