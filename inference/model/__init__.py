"""TumorChain model: 3D vision encoder (M3D-compatible ViT), projector, Gamma organ tokens,
auxiliary classifier and the LLM. Importing this package puts Hugging Face in offline mode.

TumorChainModel is imported lazily, so that the encoder, Gamma and the converter can be used
without paying for importing transformers.
"""
from __future__ import annotations

from . import devices  # noqa: F401  (first: sets offline mode before transformers is imported)
from .config import TumorChainConfig, VisionConfig
from .organ_tokens import OrganSelection
from .vision_encoder import CaseEncoding, VisionEncoder3D

__all__ = ["TumorChainConfig", "VisionConfig", "TumorChainModel", "CaseEncoding", "OrganSelection", "VisionEncoder3D"]


def __getattr__(name: str):
    if name == "TumorChainModel":
        from .modeling_tumorchain import TumorChainModel

        return TumorChainModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
