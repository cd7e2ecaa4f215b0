"""Errors a user sees. Each names the file and what is wrong with it."""
from __future__ import annotations

import json
from pathlib import Path


class TumorChainError(Exception):
    """Base for every error the product reports to a user (not a bug)."""


class InputError(TumorChainError):
    """A file or folder the user gave cannot be used; says which and why."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = Path(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)


class NotCTError(InputError):
    """The volume opens and views, but does not look like CT (modality or values): the analysis
    refuses it unless the user overrides."""


class StorageError(InputError):
    """A record the program writes (run.json, a review, the case store's session or drafts, an
    export) could not be written: disk full, read-only or missing folder. Names the file; the
    previous version of the record, if any, is left as it was (inference/atomic_write.py)."""


class SegmentationError(TumorChainError):
    """The segmentation expert could not produce organ masks."""


class ModelError(TumorChainError):
    """A model folder is missing, malformed or does not fit in memory."""


class Cancelled(TumorChainError):
    """Work stopped because the user asked to cancel."""


def raise_if_cancelled(cancel, what: str = "") -> None:
    """Raise Cancelled when ``cancel`` (a threading.Event or None) is set: the one cancel check."""
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"{what} cancelled" if what else "cancelled by the user")


def read_json_file(path: str | Path, what: str):
    """The parsed JSON of ``path``; InputError naming the file when it is missing, unreadable or not
    JSON (with line and column). ``what`` names the file for the user, e.g. "review file"."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, f"no such {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read the {what}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
