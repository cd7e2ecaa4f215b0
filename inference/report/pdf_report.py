"""The report as a PDF (A4), every round's key image and text, built with ReportLab.

Why ReportLab: maintained since 2000 (BSD licence), pure-Python wheels for every platform and
Python we support, no system libraries (WeasyPrint needs Pango/cairo, which the desktop bundle
and a batch node would have to ship), and its Platypus layout flows long model text across
pages with headings kept with what follows. Text is real PDF text (searchable, extractable),
images are embedded PNGs. DejaVu Sans is embedded when installed (covers accents, Greek,
arrows, ≥ and ×); otherwise the PDF falls back to Helvetica.
"""
from __future__ import annotations

import io
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Image, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from inference.iir.rounds import abnormal_text
from inference.report.traceable_report import TraceableReport

_FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"),
              Path("/Library/Fonts"), Path("C:/Windows/Fonts"))
_DECISION_COLOUR = {"agreed": "#2e7d32", "edited": "#b26a00", "rejected": "#c62828", "pending": "#616161"}


@lru_cache(maxsize=1)
def _fonts() -> tuple[str, str]:
    """(regular, bold) font names: DejaVu Sans when found, else Helvetica."""
    for d in _FONT_DIRS:
        regular, bold = d / "DejaVuSans.ttf", d / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            try:
                pdfmetrics.registerFont(TTFont("TC-Sans", str(regular)))
                pdfmetrics.registerFont(TTFont("TC-Sans-Bold", str(bold)))
                pdfmetrics.registerFontFamily("TC-Sans", normal="TC-Sans", bold="TC-Sans-Bold",
                                              italic="TC-Sans", boldItalic="TC-Sans-Bold")
                return "TC-Sans", "TC-Sans-Bold"
            except Exception:  # a damaged font file: Helvetica still renders every ASCII report
                continue
    return "Helvetica", "Helvetica-Bold"


def _styles() -> dict[str, ParagraphStyle]:
    regular, bold = _fonts()
    base = getSampleStyleSheet()
    return {
        "title": ParagraphStyle("t", parent=base["Title"], fontName=bold, fontSize=16, spaceAfter=2),
        "h2": ParagraphStyle("h2", parent=base["Heading2"], fontName=bold, fontSize=12, spaceBefore=10, spaceAfter=4),
        "body": ParagraphStyle("b", parent=base["BodyText"], fontName=regular, fontSize=9, leading=12),
        "small": ParagraphStyle("s", parent=base["BodyText"], fontName=regular, fontSize=7.5, leading=9.5,
                                textColor=colors.HexColor("#444444")),
        "ai": ParagraphStyle("ai", parent=base["BodyText"], fontName=regular, fontSize=9, leading=12,
                             backColor=colors.HexColor("#f1f4f9"), borderPadding=4, spaceBefore=4, spaceAfter=6),
        "rad": ParagraphStyle("rad", parent=base["BodyText"], fontName=regular, fontSize=9, leading=12,
                              backColor=colors.HexColor("#f4f8ef"), borderPadding=4, spaceBefore=4, spaceAfter=6),
    }


def _p(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(text or "").replace("\n", "<br/>"), style)


def _decision(entry, style: ParagraphStyle, what: str) -> Paragraph:
    d = entry.decision
    colour = _DECISION_COLOUR.get(d.decision, "#000000")
    head = f'<b>Radiologist</b> · <font color="{colour}"><b>{escape(d.decision)}</b></font>'
    if d.reviewer:
        head += f" · {escape(d.reviewer)}, {escape(d.at)}"
    body = {"edited": escape(d.text or ""), "agreed": f"Agrees with the AI {what}.",
            "rejected": f"Rejects the AI {what}.", "pending": "Not yet reviewed."}[d.decision]
    if d.comment:
        body += "<br/>Comment: " + escape(d.comment)
    if (sd := entry.signed_decision) is not None:
        body += "<br/>Signed decision before amendment: " + escape(sd.decision) + (
            ": " + escape(sd.text) if sd.text else "") + (f" ({escape(sd.comment)})" if sd.comment else "")
    return Paragraph(head + "<br/>" + body.replace("\n", "<br/>"), style)


def render_pdf(report: TraceableReport) -> bytes:
    """The whole report as PDF bytes."""
    st = _styles()
    s = report.study
    story: list = [_p("TumorChain traceable report", st["title"]),
                   _p(f"Generated {report.generated}" + (" · de-identified (patient identifiers removed)"
                                                         if report.deidentified else "") + f" · run {report.run_key}",
                      st["small"]),
                   Spacer(1, 4 * mm)]
    header = [["Patient", s.patient_name or "—", "Patient ID", s.patient_id or "—"],
              ["Birth date", s.patient_birth_date or "—", "Sex", s.patient_sex or "—"],
              ["Study date", s.study_date or "—", "Accession", s.accession_number or "—"],
              ["Study", s.study_description or "—", "Case", report.case.get("case_id", "")]]
    t = Table([[_p(c, st["body"]) for c in row] for row in header], colWidths=[25 * mm, 60 * mm, 25 * mm, 65 * mm])
    t.setStyle(TableStyle([("TEXTCOLOR", (0, 0), (0, -1), colors.grey), ("TEXTCOLOR", (2, 0), (2, -1), colors.grey),
                           ("VALIGN", (0, 0), (-1, -1), "TOP"), ("BOTTOMPADDING", (0, 0), (-1, -1), 1)]))
    story += [t, _p("Question", st["h2"]), _p(report.question, st["body"])]
    if len(report.steps) > 1:
        story.append(_p("Questions asked (the model card's, each its own chain)", st["h2"]))
        story += [_p(f"{x.get('title')}: {x.get('value') or 'no answer read'} (rounds "
                     f"{'-'.join(map(str, x.get('rounds', [])))}) - {x.get('question')}", st["small"])
                  for x in report.steps]
    if report.organ_images:
        story.append(_p("Key images by organ (highest P(abnormal) first)", st["h2"]))
        cells = []
        for o in report.organ_images:
            w, h = _png_size(o.image.png)
            cells.append([Image(io.BytesIO(o.image.png), width=55 * mm, height=55 * mm * h / w),
                          _p(("FLAGGED · " if o.flagged else "") + f"{o.display}: {abnormal_text(o.abnormal_prob)}, "
                             f"rounds {', '.join(map(str, o.rounds))}, axial slice {o.key_image.slice_index}",
                             st["small"])])
        rows = [cells[i:i + 3] for i in range(0, len(cells), 3)]
        rows = [r + [""] * (3 - len(r)) for r in rows]
        grid = Table(rows, colWidths=[60 * mm] * 3)
        grid.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
        story.append(grid)
    story.append(_p("Reasoning rounds", st["h2"]))
    for r in report.rounds:
        k = r.key_image
        img_w = 80 * mm
        w, h = _png_size(r.image.png)
        img = Image(io.BytesIO(r.image.png), width=img_w, height=img_w * h / w)
        organs = [f"{o.display}: mask {o.region.name} ({o.mask_label}), {abnormal_text(o.abnormal_prob)}, "
                  f"{o.region.volume_ml:.1f} ml" + (f", box {_box(o.region.bbox_mm)} mm" if o.region.bbox_mm else "")
                  + (f" [{o.fallback}]" if o.fallback else "") for o in r.organs]
        facts = [f"<b>Round {r.index}</b>" + (f" ({escape(r.step)})" if r.step else "")
                 + f": {escape(r.provenance)}",
                 f"Key image ({escape(k.source)}): axial slice {k.slice_index} (voxel axis {k.slice_axis}), "
                 f"ROI centre RAS ({', '.join(f'{v:.1f}' for v in k.world_mm)}) mm; patient right on image left."]
        facts += [escape(x) for x in organs] or ["No organ tokens in this round."]
        side = [Paragraph(f, st["small"]) for f in facts]
        row = Table([[img, side]], colWidths=[img_w + 4 * mm, 95 * mm])
        row.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)]))
        story.append(KeepTogether([_p(f"Round {r.index}", st["h2"]), row]))
        story.append(Paragraph(f"<b>AI text</b><br/>{escape(r.ai_text).replace(chr(10), '<br/>')}", st["ai"]))
        if r.unseen:
            story.append(_p(f"Not seen: the text names {', '.join(r.unseen)}, which has no mask in this case; no local "
                            "view was examined, so what it says about it is not a finding.", st["small"]))
        story.append(_decision(r, st["rad"], "text"))
    c = report.conclusion
    story += [_p("Conclusion", st["h2"]),
              Paragraph(f"<b>AI answer</b> (read from round {c.from_round})<br/>"
                        f"{escape(c.answer or '(no answer sentence found)')}", st["ai"]),
              *([_p(f"Not seen: its round names {', '.join(c.unseen)}, which has no mask in this case; what it "
                     "says about it is not a finding.", st["small"])] if c.unseen else []),
              _decision(c, st["rad"], "answer"),
              _p("Rests on rounds " + ", ".join(map(str, c.chain))
                 + (f"; global view only (no organ tokens): {', '.join(map(str, c.global_rounds))}" if c.global_rounds else "")
                 + ("; organ tokens: " + "; ".join(f"{report.regions[lid].display} (round {ri}, label {lid})"
                                                    for ri, lid in c.regions) if c.regions else ""),
                 st["small"]),
              _p("Sign-off", st["h2"])]
    if report.signed:
        story.append(_p(f"Signed by {report.signed['reviewer']} at {report.signed['at']}.", st["body"]))
    else:
        story.append(_p("Not signed." + (f" Reviewer: {report.reviewer}." if report.reviewer else ""), st["body"]))
    for a in report.amendments:
        story.append(_p(f"Amendment {a['number']} to {a['item']}: {a['decision']}"
                        + (f': "{a["text"]}"' if a["text"] else "") + (f" (reason: {a['reason']})" if a["reason"] else "")
                        + f" — {a['reviewer']}, {a['at']}", st["body"]))
    story += [_p("Provenance", st["h2"]),
              _p(f"CT content hash {report.case.get('content_hash', '')}", st["small"]),
              _p(f"Segmentation {report.segmentation.get('backend', '')}, mask hash "
                 f"{report.segmentation.get('mask_hash', '')}", st["small"]),
              _p(f"Model {report.model.get('name', '')}, weights {report.model.get('weight_hash', '')}", st["small"])]
    story += [_p(f"Warning: {w}", st["small"]) for w in report.warnings]
    story.append(_p("AI output for review by a qualified radiologist; not a diagnosis on its own.", st["small"]))

    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
                            bottomMargin=15 * mm, title="TumorChain traceable report", author="TumorChain Workstation",
                            subject="AI-assisted CT report", creator="TumorChain Workstation")
    page = _page_marks(report.domain_warning)
    doc.build(story, onFirstPage=page, onLaterPages=page, canvasmaker=_canvas_dated(report.generated))
    return buf.getvalue()


def _canvas_dated(generated: str):
    """A canvas whose PDF metadata carry the report's own clock (``generated``: shifted in a
    de-identified report), never the wall clock: CreationDate and ModDate are ``generated``, and
    the file ID digest starts from reportlab's fixed invariant stamp instead of the time."""
    when = datetime.fromisoformat(generated).astimezone(timezone.utc)

    class DatedCanvas(Canvas):
        def __init__(self, *args, **kwargs):
            kwargs["invariant"] = 1
            super().__init__(*args, **kwargs)
            stamp = self._doc._timeStamp
            stamp.t = when.timestamp()
            stamp.lt = when.timetuple()
            stamp.YMDhms = tuple(stamp.lt)[:6]
            stamp.dhh = stamp.dmm = 0
            stamp.tzname = "UTC"

    return DatedCanvas


def _page_marks(domain_warning: str):
    """Footer on every page, and above it, when the CT lies outside the model's training domain, that warning."""
    def marks(canvas, doc) -> None:
        _footer(canvas, doc)
        if domain_warning:
            canvas.saveState()
            canvas.setFont(_fonts()[0], 7)
            canvas.setFillColor(colors.HexColor("#a05a00"))
            text = domain_warning if len(domain_warning) < 190 else domain_warning[:187] + "..."
            canvas.drawString(15 * mm, A4[1] - 9 * mm, text)
            canvas.restoreState()
    return marks


def _footer(canvas, doc) -> None:
    canvas.saveState()
    canvas.setFont(_fonts()[0], 7)
    canvas.setFillColor(colors.grey)
    canvas.drawRightString(A4[0] - 15 * mm, 8 * mm, f"TumorChain traceable report · page {doc.page}")
    canvas.restoreState()


def _box(bbox) -> str:
    lo, hi = bbox
    return "(" + ", ".join(f"{v:.0f}" for v in lo) + ")–(" + ", ".join(f"{v:.0f}" for v in hi) + ")"


def _png_size(png: bytes) -> tuple[int, int]:
    from PIL import Image as PILImage

    with PILImage.open(io.BytesIO(png)) as im:
        return im.size
