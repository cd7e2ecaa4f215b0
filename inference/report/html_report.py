"""The report as one self-contained HTML file (resources/report/report.html.j2).

Key images are embedded as base64 PNG data URIs: a single file survives e-mail, PACS
attachments and copying without a folder of pictures beside it. Jinja2 autoescaping keeps
model and reviewer text from being read as markup.
"""
from __future__ import annotations

import base64
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from inference.report.traceable_report import TraceableReport

TEMPLATES = Path(__file__).resolve().parents[2] / "resources" / "report"


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"]),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render_html(report: TraceableReport) -> str:
    """The whole report as an HTML string (UTF-8), one <img> data URI per round."""
    images = {r.index: "data:image/png;base64," + base64.b64encode(r.image.png).decode("ascii") for r in report.rounds}
    organ_images = {o.label_id: "data:image/png;base64," + base64.b64encode(o.image.png).decode("ascii")
                    for o in report.organ_images}
    return _env().get_template("report.html.j2").render(r=report, images=images, organ_images=organ_images)
