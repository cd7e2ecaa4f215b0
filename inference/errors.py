"""Errors a user sees. Each names the file and what is wrong with it."""
from __future__ import annotations

from pathlib import Path


class TumorChainError(Exception):
    """Base for every error the product reports to a user (not a bug)."""


class InputError(TumorChainError):
    """A file or folder the user gave cannot be used; says which and why."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = Path(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)


class SegmentationError(TumorChainError):
    """The segmentation expert could not produce organ masks."""


class ModelError(TumorChainError):
    """A model folder is missing, malformed or does not fit in memory."""


class Cancelled(TumorChainError):
    """Work stopped because the user asked to cancel."""
