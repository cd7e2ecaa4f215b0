"""One home for each closed set of names the product uses, and for the defaults every entry point shares.

StrEnum members compare equal to (and serialise as) their strings, so run.json, configs and
command lines keep their plain values.
"""
from __future__ import annotations

from enum import StrEnum


class Task(StrEnum):
    """The standard analysis tasks (paper Table 1), in the order the window lists them."""

    LOCALIZATION = "localization"
    ATTRIBUTES = "attributes"
    TNM = "tnm"
    REPORT = "report"


class GammaMode(StrEnum):
    """How an organ's tokens are taken (paper eq. 4): from the case's patch tokens, from its re-encoded
    box, or by pooling the conv stem's features inside the mask."""

    TOKENS = "tokens"
    CROP = "crop"
    MASKED = "masked"


class CacheMode(StrEnum):
    """How IIR keeps the language model's context between rounds (inference/iir/decoding.py)."""

    SHARED = "shared"
    PER_ROUND = "per_round"
    NONE = "none"


class ProjectorType(StrEnum):
    """The projector P: the paper's Linear-ReLU-Linear, or M3D-LaMed's spatial-pooling projector's MLP
    (Linear, then GELU + Linear per further layer; its own key names projector.{0,2,...})."""

    MLP_RELU = "mlp_relu"
    M3D_SPP = "m3d_spp"


class Preprocessing(StrEnum):
    """How a CT becomes the model's input volume: the paper's (soft-tissue window, body crop, square
    in-plane) or M3D's (min-max over the volume, foreground crop, resize)."""

    TUMORCHAIN = "tumorchain"
    M3D = "m3d"


class PromptFormat(StrEnum):
    """How the first round's prompt is laid out: ours (resources/prompts/iir_template.json) or the
    plain-text layout M3D-LaMed was trained on (BOS, image tokens from position 1, the question)."""

    TUMORCHAIN = "tumorchain"
    M3D = "m3d"


class Decision(StrEnum):
    """A radiologist's decision on one reviewed item."""

    PENDING = "pending"
    AGREED = "agreed"
    EDITED = "edited"
    REJECTED = "rejected"


class Device(StrEnum):
    AUTO = "auto"
    CUDA = "cuda"
    CPU = "cpu"


TASKS = tuple(t.value for t in Task)
GAMMA_MODES = tuple(m.value for m in GammaMode)
CACHE_MODES = tuple(m.value for m in CacheMode)
PROJECTOR_TYPES = tuple(p.value for p in ProjectorType)
PREPROCESSINGS = tuple(p.value for p in Preprocessing)
PROMPT_FORMATS = tuple(p.value for p in PromptFormat)
DECISIONS = tuple(d.value for d in Decision)
DEVICES = tuple(d.value for d in Device)

CT_TOKEN = "<ct>"  # placeholder of one global visual token
ORGAN_TOKEN = "<organ_feature>"  # placeholder of one organ visual token
IGNORE_INDEX = -100  # Hugging Face's "no loss here" label

# per IIR round, everywhere (CLI, window, evaluation): the same case gives the same run record
DEFAULT_MAX_NEW_TOKENS = 512
