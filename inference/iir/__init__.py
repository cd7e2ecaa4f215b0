"""Iterative interleaved reasoning (paper section 3.2): sequence building, KV-cache decoding, the loop."""
from .conclusion import Conclusion, parse_conclusion
from .decoding import CACHE_MODES, Generation, KVDecoder, SamplingConfig, default_stop_ids
from .features import GridMasks, ModelCaseFeatures
from .generator import ModelRoundGenerator
from .interleaved_input import (CT_TOKEN, ORGAN_TOKEN, GlobalVisual, Ids, InterleavedIds, OrganVisual,
                                SequenceBuilder, Text, embed_interleaved)
from .loop import IIRLoop, IIRResult, IIRSettings
from .prompts import TASKS, IIRTemplate, OrganRef, chain_segments, load_template, task_question, training_sequence
from .rounds import ExaminedOrgan, Round, RoundTimings, SkippedOrgan

__all__ = [
    "CACHE_MODES", "CT_TOKEN", "ORGAN_TOKEN", "TASKS", "Conclusion", "ExaminedOrgan", "Generation",
    "GlobalVisual", "GridMasks", "IIRLoop", "IIRResult", "IIRSettings", "IIRTemplate", "Ids",
    "InterleavedIds", "KVDecoder", "ModelCaseFeatures", "ModelRoundGenerator", "OrganRef",
    "OrganVisual", "Round", "RoundTimings", "SamplingConfig", "SequenceBuilder", "SkippedOrgan", "Text",
    "chain_segments", "default_stop_ids", "embed_interleaved", "load_template", "parse_conclusion",
    "task_question", "training_sequence",
]
