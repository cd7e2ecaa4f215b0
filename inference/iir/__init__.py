"""Iterative interleaved reasoning (paper section 3.2): sequence building, KV-cache decoding, the loop.

Names load lazily (PEP 562) so that reading a run.json or a review (rounds, conclusion) does not
import torch and transformers.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "conclusion": ("Conclusion", "ReportSections", "parse_conclusion", "report_sections"),
    "decoding": ("CACHE_MODES", "Generation", "KVDecoder", "SamplingConfig", "default_stop_ids"),
    "features": ("GridMasks", "ModelCaseFeatures"),
    "generator": ("ModelRoundGenerator",),
    "interleaved_input": ("CT_TOKEN", "ORGAN_TOKEN", "GlobalVisual", "Ids", "InterleavedIds", "OrganVisual",
                          "SequenceBuilder", "Text"),
    "loop": ("IIRLoop", "IIRResult", "IIRSettings"),
    "prompts": ("TASKS", "IIRTemplate", "OrganRef", "chain_segments", "load_template", "task_question",
                "training_sequence"),
    "rounds": ("ExaminedOrgan", "Round", "RoundTimings", "SkippedOrgan"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'inference.iir' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
