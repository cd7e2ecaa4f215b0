"""A site's own data -> a training manifest: a folder of CTs plus a CSV of their reports.

CSV columns (header row; UTF-8, or a spreadsheet's cp1252 export; ',' ';' or tab: inference/csv_table.py):
    ct            CT file or DICOM folder, relative to --cts (or absolute)                        required
    report        the report text (findings; "Impression:"/"Pathology:" sections are recognised)   required
    impression    the conclusion, when kept apart from the report                                   optional
    pathology     the pathology result (diagnosis, maybe "pT3 N1 M0")                               optional
    stage         the stage ("T3N1M0", "pT2 N0 M0"); wins over stages derived from the findings   optional
    masks, parts  label NIfTIs (merged or TotalSegmentator scheme); default: <masks-dir>/<case_id>.nii.gz
                  when --masks-dir is given, else none = segment on the fly during training (cached)
    lesions       a lesion mask NIfTI (any non-zero voxel): the sub-region and HU come from it      optional
    case_id       default: the CT's file or folder name
    organ_labels  per-organ normal/abnormal for the classifier, e.g. "pancreas:1;liver:0" (else from findings)

Each row: extract the findings (rule-based, or an LLM with the rules as fallback), stage them, ground
them in the masks, write the cohort's chains for every subtask they support. A bad row (no report, a
CT or mask that does not load, a report naming no organ, a sub-region that contradicts the lesion
mask, an organ without mask) is reported with its line number and skipped; the run goes on. The
manifest is written only at the end and atomically, with the conversion report beside it.
"""
from __future__ import annotations

import re
from pathlib import Path

from inference.atomic_write import atomic_write
from inference.csv_table import read_csv_table
from inference.errors import InputError
from inference.labels import match_organs, merged_labels

from ..cohort.knowledge import load_kg
from ..manifest import write_manifest
from .chains import site_samples
from .conversion_report import CaseReport, ConversionReport, extracted_summary
from .grounding import GroundingError, ground, load_masks
from .rule_extractor import ReportInput, RuleExtractor, stated_stage
from .tnm import stage_findings

REQUIRED = ("ct", "report")


class RowError(ValueError):
    """A row that is skipped, with the reason."""


def _organ_labels(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    table = merged_labels()
    for item in filter(None, (p.strip() for p in (text or "").split(";"))):
        name, _, value = item.partition(":")
        if name.strip() not in table or value.strip() not in ("0", "1"):
            raise RowError(f"organ_labels item {item!r} must be '<label name>:0|1'")
        out[name.strip()] = int(value)
    return out


def _path(row: dict, column: str, base: Path) -> Path | None:
    value = (row.get(column) or "").strip()
    if not value:
        return None
    p = Path(value)
    return p if p.is_absolute() else base / p


def read_rows(csv_path: Path) -> list[tuple[int, dict]]:
    """(line, row) of every report row (reports_csv says which exports it reads)."""
    return read_csv_table(csv_path, REQUIRED)[0]


class SiteConverter:
    """One conversion run (extractor and knowledge graph shared by all rows)."""

    def __init__(self, cts: Path, out: Path, masks_dir: Path | None = None, extractor=None):
        self.cts, self.out, self.masks_dir = cts, out, masks_dir
        self.kg = load_kg()
        self.extractor = extractor or RuleExtractor(self.kg)
        self.findings: dict[str, object] = {}  # case_id -> CaseFindings of the converted rows (benchmarks score them)

    def _rel(self, p: Path | None) -> str | None:
        if p is None:
            return None
        try:
            return str(p.resolve().relative_to(self.out.parent.resolve()))
        except ValueError:
            return str(p.resolve())

    def row(self, line: int, row: dict):
        """(samples, CaseReport) of one CSV row; RowError / InputError / GroundingError skip it."""
        from inference.ct_io.load import load_ct

        missing = [c for c in REQUIRED if not (row.get(c) or "").strip()]
        if missing:
            raise RowError(f"empty {', '.join(missing)}")
        ct = _path(row, "ct", self.cts)
        if not ct.exists():
            raise RowError(f"CT {ct} not found")
        case_id = (row.get("case_id") or "").strip() or re.sub(r"(\.nii(\.gz)?|\.dcm)$", "", ct.name)
        labels = _organ_labels(row.get("organ_labels", ""))
        masks = _path(row, "masks", self.cts)
        if masks is None and self.masks_dir is not None:
            guess = self.masks_dir / f"{case_id}.nii.gz"
            masks = guess if guess.is_file() else None
        parts, lesions = _path(row, "parts", self.cts), _path(row, "lesions", self.cts)
        for what, p in (("masks", masks), ("parts", parts), ("lesions", lesions)):
            if p is not None and not p.is_file():
                raise RowError(f"{what} file {p} not found")
        volume = load_ct(ct)  # a CT that does not load is an InputError naming it
        case_masks = load_masks(masks, parts, lesions, volume.shape, volume.hu if lesions is not None else None)
        inp = ReportInput(row["report"], row.get("impression") or "", row.get("pathology") or "",
                          row.get("stage") or "")
        f = self.extractor.extract(case_id, inp)
        if (row.get("stage") or "").strip():
            f.stated_stage = stated_stage(row["stage"])
            f.sources["stage"] = "column"
        if (row.get("pathology") or "").strip() and f.sources.get("pathology") == "rules":
            f.sources["pathology"] = "column"
        table = merged_labels()
        named = {table.by_id(table.parent_or_self(i)).name for m in match_organs(inp.report) for i in m.label_ids}
        if not f.lesions and not f.metastases and not named & set(self.kg.organs):
            raise RowError("the report names no digestive organ (" + (", ".join(sorted(named)) or "no organ at all")
                           + "): nothing to train on")
        stage_findings(self.kg, f)
        ground(f, case_masks)
        f.organ_abnormal.update(labels)
        self.findings[case_id] = f
        samples, not_written = site_samples(f, self.kg, (self._rel(ct), self._rel(masks), self._rel(parts)))
        samples = [_rooted(s, self.out.parent) for s in samples]
        report = CaseReport(line, case_id, "converted", extracted=extracted_summary(f),
                            dropped=[{"what": d.what, "reason": d.reason} for d in f.dropped],
                            samples=_count(samples), not_written=not_written)
        return samples, report


def _rooted(sample, root: Path):
    from dataclasses import replace

    return replace(sample, root=root)


def _count(samples) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in samples:
        out[s.subtask] = out.get(s.subtask, 0) + 1
    return out


def convert_site(cts: str | Path, reports_csv: str | Path, out: str | Path, masks_dir: str | Path | None = None,
                 extractor=None, dry_run: bool = False) -> ConversionReport:
    """Convert every row; write the manifest and ``<out>.conversion.json`` unless ``dry_run``."""
    cts, csv_path, out = Path(cts), Path(reports_csv), Path(out)
    if not cts.is_dir():
        raise InputError(cts, "CT folder not found")
    conv = SiteConverter(cts, out, Path(masks_dir) if masks_dir else None, extractor)
    report = ConversionReport(extractor=getattr(conv.extractor, "name", "rules"))
    samples = []
    rows, report.notes = read_csv_table(csv_path, REQUIRED)
    for line, row in rows:
        try:
            got, case = conv.row(line, row)
        except (RowError, InputError, GroundingError) as exc:
            case_id = (row.get("case_id") or "").strip() or (row.get("ct") or "").strip() or f"line {line}"
            report.add(CaseReport(line, case_id, "skipped", reason=f"{csv_path} line {line}: {exc}"))
            continue
        samples += got
        report.add(case)
    if dry_run:
        return report
    if not samples:
        raise InputError(csv_path, "no row could be converted:\n" + report.summary())
    write_manifest(out, samples)  # atomic: a failed write leaves any previous manifest as it was
    report.written = str(out)
    atomic_write(conversion_report_path(out), report.to_json(), what="conversion report")
    return report


def conversion_report_path(manifest: Path) -> Path:
    return manifest.with_name(manifest.name.removesuffix(".jsonl") + ".conversion.json")
