"""A site's own data -> a training manifest: a folder of CTs plus a CSV of their report texts.

CSV columns (header row; UTF-8):
    ct            CT file or DICOM folder, relative to --cts (or absolute)          required
    report        the report text (findings and reasoning)                          required
    impression    the conclusion; default: the report's last sentence               optional
    masks, parts  label NIfTIs (merged or TotalSegmentator scheme); default: <masks-dir>/<case_id>.nii.gz
                  when --masks-dir is given, else null = segment on the fly during training (cached)
    case_id       default: the CT's file or folder name
    organ_labels  per-organ normal/abnormal for the classifier, e.g. "pancreas:1;liver:0"

Each row becomes one "report" sample with a two-round IIR chain, built so that inference's loop
examines exactly what the chain says: round 1 states the impression and names every organ the report
names (the loop then examines them), round 2 is the full report and names nothing new, both ending
"Thus, the answer is <impression>.". Errors name the CSV line.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

from inference.errors import InputError
from inference.labels import merged_labels, organs_named
from training.manifest import CONCLUSION, Sample, sample_from_dict, write_manifest

REQUIRED = ("ct", "report")


def _last_sentence(text: str) -> str:
    parts = [p.strip() for p in re.split(r"(?<=[.!?])\s+", text.strip()) if p.strip()]
    return parts[-1].rstrip(".") if parts else ""


def _labels(text: str, line: int, csv_path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    table = merged_labels()
    for item in filter(None, (p.strip() for p in (text or "").split(";"))):
        name, _, value = item.partition(":")
        name = name.strip()
        if name not in table or value.strip() not in ("0", "1"):
            raise InputError(csv_path, f"line {line}: organ_labels item {item!r} must be '<label name>:0|1'")
        out[name] = int(value)
    return out


def row_sample(row: dict, line: int, csv_path: Path, cts: Path, out_dir: Path, masks_dir: Path | None) -> Sample:
    from inference.iir.prompts import task_question

    table = merged_labels()
    missing = [c for c in REQUIRED if not (row.get(c) or "").strip()]
    if missing:
        raise InputError(csv_path, f"line {line}: empty {', '.join(missing)}")
    ct = Path(row["ct"].strip())
    ct = ct if ct.is_absolute() else cts / ct
    if not ct.exists():
        raise InputError(csv_path, f"line {line}: CT {ct} not found")
    case_id = (row.get("case_id") or "").strip() or re.sub(r"(\.nii(\.gz)?|\.dcm)$", "", ct.name)
    report = " ".join(row["report"].split())
    final = ((row.get("impression") or "").strip().rstrip(".") or _last_sentence(report)).strip()
    if not final:
        raise InputError(csv_path, f"line {line}: no impression and no sentence in the report")
    body = re.sub(r"\s*(thus|therefore),?\s+the\s+answer\s+is\s+.*$", "", report, flags=re.IGNORECASE).rstrip(" .")
    question = task_question("report")
    named = list(dict.fromkeys(organs_named(question, table) + organs_named(body, table)))
    organs = [table.by_id(i) for i in named if i in table]
    mentions = ", ".join(o.display for o in organs)
    r1 = f"Impression: {final}." + (f" The findings involve the {mentions}." if organs else "") + f" {CONCLUSION}{final}."
    r2 = f"{body}. {CONCLUSION}{final}."

    def rel(p: Path | None) -> str | None:
        if p is None:
            return None
        try:
            return str(p.resolve().relative_to(out_dir.resolve()))
        except ValueError:
            return str(p.resolve())

    masks = Path(row["masks"].strip()) if (row.get("masks") or "").strip() else None
    if masks is None and masks_dir is not None:
        guess = masks_dir / f"{case_id}.nii.gz"
        masks = guess if guess.is_file() else None
    elif masks is not None and not masks.is_absolute():
        masks = cts / masks
    parts = Path(row["parts"].strip()) if (row.get("parts") or "").strip() else None
    if parts is not None and not parts.is_absolute():
        parts = cts / parts
    for what, p in (("masks", masks), ("parts", parts)):
        if p is not None and not p.is_file():
            raise InputError(csv_path, f"line {line}: {what} file {p} not found")
    attend = _loop_attend(question, r1, r2, masks, parts)
    d = {"id": f"{case_id}_report", "case_id": case_id, "ct": rel(ct), "masks": rel(masks), "parts": rel(parts),
         "task": "report", "subtask": "report", "question": question, "options": None, "answer": r2,
         "final_answer": final, "roi_organs": attend, "organ_labels": _labels(row.get("organ_labels", ""), line, csv_path),
         "chain": [{"answer": r1, "attend": attend}, {"answer": r2, "attend": []}]}
    return sample_from_dict(d, out_dir)


def _mask_counts(masks: Path | None, parts: Path | None) -> dict[int, int]:
    """Voxels per label id of the case's masks; without masks (segmentation on the fly) every organ is
    assumed present and no substructure (TotalSegmentator's 'total' task has none)."""
    import nibabel as nib
    import numpy as np

    if masks is None:
        return {lab.id: 1 for lab in merged_labels().organs()}
    counts: dict[int, int] = {}
    for f in (masks, parts):
        if f is not None:
            ids, n = np.unique(np.asarray(nib.load(str(f)).dataobj).astype(np.int64), return_counts=True)
            counts.update({int(i): int(c) for i, c in zip(ids, n) if i})
    return counts


def _loop_attend(question: str, r1: str, r2: str, masks: Path | None, parts: Path | None) -> list[str]:
    """The organs inference's IIR loop examines after round 1 (substructure fallbacks included)."""
    from training.chain_plan import plan_chain

    plan = plan_chain(question, [(r1, []), (r2, [])], _mask_counts(masks, parts), 1, 1, 0)
    return plan.examined[0] if plan.examined else []


def convert_site(cts: str | Path, reports_csv: str | Path, out: str | Path, masks_dir: str | Path | None = None) -> int:
    """Write the manifest; returns the number of samples."""
    cts, csv_path, out = Path(cts), Path(reports_csv), Path(out)
    if not cts.is_dir():
        raise InputError(cts, "CT folder not found")
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            lacking = [c for c in REQUIRED if c not in header]
            if lacking:
                raise InputError(csv_path, f"CSV header lacks column(s) {', '.join(lacking)} (has {header})")
            rows = list(enumerate(reader, start=2))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(csv_path, f"cannot read CSV: {exc}") from None
    if not rows:
        raise InputError(csv_path, "CSV has no rows")
    samples = [row_sample(row, line, csv_path, cts, out.parent, Path(masks_dir) if masks_dir else None)
               for line, row in rows]
    write_manifest(out, samples)
    return len(samples)
