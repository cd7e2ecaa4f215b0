"""The SHA-256 a run record names its model's weights by: what a signed report is traceable to."""
from __future__ import annotations

import hashlib
from pathlib import Path

from inference.errors import InputError
_WEIGHT_HASHES: dict[tuple, tuple[str, list[str]]] = {}


def model_weight_hash(model_dir: str | Path) -> tuple[str, list[str]]:
    """(SHA-256 over every *.safetensors file under ``model_dir``, their relative paths).

    Each file contributes its relative path and its bytes, in sorted order, so renaming or
    changing any weight file changes the hash. Remembered per (path, size, mtime) for the process:
    a 7B model's 15 GB take a while to read.
    """
    root = Path(model_dir)
    files = sorted(p for p in root.rglob("*.safetensors") if p.is_file())
    if not files:
        raise InputError(root, "no .safetensors weight files in the model folder")
    rel = [p.relative_to(root).as_posix() for p in files]
    key = (str(root.resolve()),) + tuple((r, p.stat().st_size, p.stat().st_mtime_ns) for r, p in zip(rel, files))
    if key in _WEIGHT_HASHES:
        return _WEIGHT_HASHES[key]
    h = hashlib.sha256()
    for r, p in zip(rel, files):
        h.update(r.encode() + b"\0")
        with p.open("rb") as fh:
            while chunk := fh.read(8 << 20):
                h.update(chunk)
    _WEIGHT_HASHES[key] = (h.hexdigest(), rel)
    return _WEIGHT_HASHES[key]
