"""``export_report``: write the traceable report of one reviewed run, in every format asked for.

    out_dir/run.json            the run record (tumorchain.run/1) as exported
    out_dir/review.json         the review (tumorchain.review/1): AI text and radiologist's side by side
    out_dir/report.json         the traceable report (tumorchain.report/1): rounds <-> regions <-> images
    out_dir/key_images/round<r>_key.png
    out_dir/report.html         self-contained (images inline)
    out_dir/report.pdf
    out_dir/seg_organs.dcm      DICOM SEG (and seg_parts.dcm when the case has substructures)
    out_dir/sr.dcm              DICOM Comprehensive 3D SR (TID 2000 text) referencing the SEG segments and CT slices
    out_dir/sr_measurements.dcm TID 1500 measurement report: per examined organ volume, long axis, the
                                AI-stated size, P(abnormal), the radiologist's decision (dicom_measurements.py)

DICOM objects are written only when the CT came from a DICOM series; otherwise the result
carries a note saying why. ``deidentify=True`` removes patient identifiers from every file
(deidentify.py). Each file is written through inference.atomic_write (a temporary name, fsynced,
renamed, folder fsynced), so an export that fails half-way leaves no half-written file behind.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from inference.atomic_write import atomic_write
from inference.ct_volume import CTVolume
from inference.errors import InputError, StorageError
from inference.report.deidentify import Deidentifier
from inference.report.review import Review, ReviewError, run_key
from inference.report.traceable_report import TraceableReport, build_report
from inference.run_record import RunRecord
from inference.segmentation.organ_masks import OrganMasks

FORMATS = ("json", "html", "pdf", "dicom")


@dataclass
class ExportResult:
    """paths: what was written, by kind; timings_ms: per step and total; notes: what was not
    written and why, and other things the user should know."""

    out_dir: Path
    paths: dict[str, Path] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    report: TraceableReport | None = None


def export_report(run: Any, review: Review, ct: CTVolume, masks: OrganMasks, out_dir: str | Path, *,
                  formats: Iterable[str] = FORMATS, deidentify: bool = False,
                  key_images: Mapping[int, Any] | None = None, salt: bytes | None = None,
                  organization: str = "", image_size: int = 512) -> ExportResult:
    """Export ``run`` with its ``review`` for the CT and masks it was made from.

    key_images: round index -> the GUI's picture (KeyImage, PNG bytes or file); others are
    rendered. salt: de-identification secret (same salt -> same pseudonym and UIDs).
    Raises InputError when the CT, masks or review do not belong to the run, a format is
    unknown, or the folder cannot be written.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    formats = set(formats)
    if unknown := formats - set(FORMATS):
        raise InputError(None, f"unknown export format(s) {', '.join(sorted(unknown))}; choose from {', '.join(FORMATS)}")
    _check_inputs(run, review, ct, masks)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(out, f"cannot create the export folder: {exc.strerror or exc}") from None
    result = ExportResult(out)
    deid = None
    if deidentify:
        deid = Deidentifier(ct.study, salt) if salt is not None else Deidentifier(ct.study)
    if deid and key_images:
        result.notes.append("de-identified export: key images were rendered, not taken from screenshots "
                            "(a screenshot may show identifiers)")

    t = time.perf_counter()
    try:
        report = build_report(run, review, ct, masks, deidentifier=deid, key_images=key_images, image_size=image_size)
    except ReviewError as exc:
        raise InputError(None, f"the review does not belong to this run: {exc}") from None
    result.report = report
    result.timings_ms["report_ms"] = _ms(t)

    if "json" in formats or "html" in formats:
        for r in report.rounds:
            result.paths[f"key_image_{r.index}"] = _write(out / "key_images" / r.key_image.file, r.image.png)
        for o in report.organ_images:
            result.paths[f"key_image_organ_{o.name}"] = _write(out / "key_images" / o.key_image.file, o.image.png)
    if "json" in formats:
        t = time.perf_counter()
        run_d = deid.run_dict(run.to_dict()) if deid else run.to_dict()
        review_d = deid.review_dict(review.to_dict()) if deid else review.to_dict()
        if deid:  # the pseudonymised pair still opens together (its key follows the shifted run)
            review_d["run_key"] = run_key(RunRecord.from_dict(run_d))
        result.paths["run_json"] = _write(out / "run.json", _json(run_d))
        result.paths["review_json"] = _write(out / "review.json", _json(review_d))
        result.paths["report_json"] = _write(out / "report.json", _json(report.to_dict()))
        result.timings_ms["json_ms"] = _ms(t)
    if "html" in formats:
        from inference.report.html_report import render_html

        t = time.perf_counter()
        result.paths["html"] = _write(out / "report.html", render_html(report).encode("utf-8"))
        result.timings_ms["html_ms"] = _ms(t)
    if "pdf" in formats:
        from inference.report.pdf_report import render_pdf

        t = time.perf_counter()
        result.paths["pdf"] = _write(out / "report.pdf", render_pdf(report))
        result.timings_ms["pdf_ms"] = _ms(t)
    if "dicom" in formats:
        _export_dicom(report, run, ct, masks, out, deid, organization, result)
    result.timings_ms["total_ms"] = _ms(t0)
    return result


def _export_dicom(report: TraceableReport, run: Any, ct: CTVolume, masks: OrganMasks, out: Path,
                  deid: Deidentifier | None, organization: str, result: ExportResult) -> None:
    from inference.ct_io.dicom_multiframe import classic_series_uid
    from inference.report.dicom_source import dicom_unavailable_reason, has_dicom_source, source_headers

    if not has_dicom_source(ct):
        result.notes.append(dicom_unavailable_reason(ct))
        return
    from inference.report.dicom_seg import build_segmentations
    from inference.report.dicom_sr import build_sr

    version = run.tool_version or "unknown"
    t = time.perf_counter()
    # pseudonymised sources (new UIDs, no names) with their original dates: every written object
    # then gets exactly one date shift, from deid.dataset(), which also marks it de-identified
    derived = ct.study.derived_slices  # an enhanced source: its slices exist once written to ct/ below
    series_uid = classic_series_uid(ct.series_uid) if derived else ct.series_uid
    sources = source_headers(ct, deid.header_study(shift_dates=False) if deid else None,
                             deid.uid(series_uid) if deid else series_uid)
    segs = build_segmentations(masks, sources, software_version=version, algorithm_version=version)
    for seg in segs:
        if deid:
            deid.dataset(seg.dataset, remap_uids=False)
        result.paths["seg" if seg.kind == "organs" else "seg_parts"] = _write_dicom(out / f"seg_{seg.kind}.dcm", seg.dataset)
    result.timings_ms["dicom_seg_ms"] = _ms(t)
    t = time.perf_counter()
    sr = build_sr(report, sources, segs, software_version=version, organization=organization)
    if deid:
        deid.dataset(sr, remap_uids=False)
    result.paths["sr"] = _write_dicom(out / "sr.dcm", sr)
    result.timings_ms["dicom_sr_ms"] = _ms(t)
    t = time.perf_counter()
    from inference.report.dicom_measurements import build_measurement_report

    tid1500 = build_measurement_report(report, masks, sources, segs, software_version=version, organization=organization)
    if deid:
        deid.dataset(tid1500, remap_uids=False)
    result.paths["sr_tid1500"] = _write_dicom(out / "sr_measurements.dcm", tid1500)
    result.timings_ms["dicom_sr_tid1500_ms"] = _ms(t)
    if deid or derived:  # the SEG and SR reference CT UIDs that exist only here: write that CT beside them
        from inference.report.dicom_ct_series import ct_slice_datasets

        t = time.perf_counter()
        for k, ds in ct_slice_datasets(ct, sources):
            if deid:
                deid.dataset(ds, remap_uids=False)
            _write_dicom(out / "ct" / f"CT{k + 1:04d}.dcm", ds)
        result.paths["ct_series"] = out / "ct"
        what = ("the de-identified CT series" if deid else
                "the CT, which came as an enhanced (multi-frame) image, as a classic CT series")
        result.notes.append(f"wrote {what} ({ct.shape[2]} slices) to ct/, under the UIDs the SEG and SR reference")
        result.timings_ms["dicom_ct_ms"] = _ms(t)


def _check_inputs(run: Any, review: Review, ct: CTVolume, masks: OrganMasks) -> None:
    if ct.content_hash() != run.case.content_hash:
        raise InputError(ct.source_path, "is not the CT this run analysed (its content hash differs from run.json's)")
    if masks.shape != ct.shape:
        raise InputError(None, f"the organ masks {masks.shape} are not on the CT grid {ct.shape}")
    if masks.content_hash() != run.segmentation.mask_hash:
        raise InputError(None, f"the organ masks ({masks.backend}) are not the ones this run used "
                         "(their mask hash differs from run.json's)")
    try:
        review.check_matches(run)
    except ReviewError as exc:
        raise InputError(None, f"the review does not belong to this run: {exc}") from None


def _json(d: dict) -> bytes:
    return (json.dumps(d, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _write(path: Path, data: bytes) -> Path:
    """Atomic and durable (inference.atomic_write): a failed export never leaves a half-written
    file; StorageError naming the file."""
    return atomic_write(path, data, what="export file")


def _write_dicom(path: Path, ds) -> Path:
    import io

    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return _write(path, buf.getvalue())


def _ms(t: float) -> float:
    return round((time.perf_counter() - t) * 1000.0, 2)
