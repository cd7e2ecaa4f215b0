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
DECISIONS = tuple(d.value for d in Decision)
DEVICES = tuple(d.value for d in Device)

CT_TOKEN = "<ct>"  # placeholder of one global visual token
ORGAN_TOKEN = "<organ_feature>"  # placeholder of one organ visual token
IGNORE_INDEX = -100  # Hugging Face's "no loss here" label

# per IIR round, everywhere (CLI, window, evaluation): the same case gives the same run record
DEFAULT_MAX_NEW_TOKENS = 512
