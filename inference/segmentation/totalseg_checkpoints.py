"""nnU-Net checkpoints load as data, never as code.

nnU-Net loads each fold's ``checkpoint_final.pth`` with ``torch.load(weights_only=False)``: a full
unpickle, which calls whatever the file names. TotalSegmentator's weights reach a hospital by weights
pack or by copy, and a pack's sha256s only prove that a file is the one the exporting machine packed.
So inside the worker every ``torch.load`` runs torch's restricted unpickler (``weights_only=True``),
which builds tensors, containers and plain values and nothing else, with numpy's data types allowed
on top: nnU-Net's checkpoints log their metrics as numpy float64 scalars (the globals
``numpy.core.multiarray.scalar``, ``numpy.dtype``, a dtype class and ``_codecs.encode``, as the
PyTorch 2.6 reports against nnU-Net list them). A checkpoint naming anything else is refused, with
the file and what torch's loader stopped at; ``TUMORCHAIN_TRUST_CHECKPOINTS=1`` loads it the old way,
for a file whose source the site trusts.

Runs inside the TotalSegmentator environment (torch and numpy); the worker imports it from beside
itself, like totalseg_weights.py, and never imports the workstation's packages.
"""
from __future__ import annotations

import os
import pickle
import re

ENV_TRUST = "TUMORCHAIN_TRUST_CHECKPOINTS"


class UnsafeCheckpoint(Exception):
    """A checkpoint that names code, not data; never unpickled."""


def numpy_data_globals() -> list:
    """numpy's scalar, array and dtype constructors, under the names numpy 1.x and 2.x pickle them."""
    import _codecs

    import numpy as np

    core = np._core if hasattr(np, "_core") else np.core
    allowed: list = [np.dtype, np.ndarray, _codecs.encode]
    allowed += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed += [(core.multiarray.scalar, f"{module}.scalar"),
                    (core.multiarray._reconstruct, f"{module}._reconstruct")]
    return allowed


def stopped_at(message: str) -> str:
    """The reason in torch's weights-only error, without its preamble and its pointer to the docs."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", message) if p.strip()]
    reasons = [p for p in paragraphs if not p.startswith(("Weights only load failed", "Check the documentation"))]
    reason = reasons[-1] if reasons else message
    return reason.split("WeightsUnpickler error:")[-1].strip()[:300]


def guard_checkpoint_loading() -> bool:
    """Make ``torch.load`` in this process load data only. Returns False when the site chose to trust
    its checkpoints (``TUMORCHAIN_TRUST_CHECKPOINTS=1``), which leaves torch.load as it is."""
    import torch

    if os.environ.get(ENV_TRUST) == "1":
        return False
    real_load = torch.load
    allowed = numpy_data_globals()

    def load_data_only(f, map_location=None, pickle_module=None, *, weights_only=None, **kwargs):
        if pickle_module is not None:
            raise UnsafeCheckpoint(f"{f}: refused: a custom unpickler was asked for")
        try:
            with torch.serialization.safe_globals(allowed):
                return real_load(f, map_location=map_location, weights_only=True, **kwargs)
        except pickle.UnpicklingError as exc:  # (a damaged zip raises RuntimeError, passed on as it is)
            raise UnsafeCheckpoint(
                f"{f}: refused to load: it is not plain weights data (torch's data-only loader stopped at: "
                f"{stopped_at(str(exc))}); unpickling it could run code the file carries. If this file comes "
                f"from a source you trust (TotalSegmentator's own release), set {ENV_TRUST}=1 for the "
                f"workstation and segment again.") from None

    torch.load = load_data_only
    return True
