"""Run details, one click from the reasoning panel: which model (folder, weight hash, LLM,
dtype, device), which masks (segmentation backend, source, hash), the settings, and where the
time went (per step and per round). The same facts run.json stores."""
from __future__ import annotations

import html

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QPushButton, QTextBrowser, QVBoxLayout

from inference.iir.rounds import abnormal_text

TIMING_NAMES = [("model_load_ms", "model loading"), ("load_ct_ms", "CT loading"), ("segmentation_ms", "segmentation"),
                ("preprocess_ms", "preprocessing"), ("encode_ms", "CT encoding"), ("first_token_ms", "Analyze to first token"),
                ("iir_ms", "reasoning (all rounds)"), ("analysis_ms", "Analyze to done"), ("total_ms", "total")]


def _row(name: str, value) -> str:
    return f"<tr><th align=left>{html.escape(name)}</th><td>{html.escape(str(value))}</td></tr>"


def _ms(value: float) -> str:
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def run_details_html(run, run_path: str | None = None) -> str:
    m, s, st = run.model, run.segmentation, run.settings
    out = ["<h3>Model</h3><table cellspacing=4>",
           _row("name", m.name), _row("folder", m.path), _row("language model", m.llm_type),
           _row("weights (SHA-256)", m.weight_hash[:16] + "…"), _row("dtype", m.dtype), _row("device", m.device),
           "</table><h3>Organ masks</h3><table cellspacing=4>",
           _row("segmentation backend", s.backend), _row("mask file", s.mask_source or "(made in the workstation)"),
           _row("mask hash", s.mask_hash[:16] + "…"), _row("labels", ", ".join(s.labels_present) or "-"),
           "</table><h3>Settings</h3><table cellspacing=4>",
           _row("round limit", st.max_rounds), _row("max new tokens per round", st.max_new_tokens),
           _row("sampling", "greedy" if st.temperature == 0 else f"T={st.temperature}, top-p {st.top_p}, top-k {st.top_k}, seed {st.seed}"),
           _row("negated mentions examined", "yes" if st.include_negated else "no"), _row("KV cache", st.cache_mode),
           _row("stopped because", run.stop_reason.replace("_", " ")),
           "</table><h3>Timings</h3><table cellspacing=4>"]
    for key, name in TIMING_NAMES:
        if key in run.timings:
            out.append(_row(name, _ms(run.timings[key])))
    out.append("</table><table cellspacing=4 border=0><tr><th>round</th><th>prompt tokens</th><th>prefill</th>"
               "<th>new tokens</th><th>decode</th><th>tokens/s</th><th>organs</th></tr>")
    for r in run.rounds:
        t = r.timings
        organs = ", ".join(f"{o.display} ({abnormal_text(o.abnormal_prob, '{:.2f}')})" for o in r.organs) or "-"
        out.append(f"<tr><td>{r.index}</td><td>{t.prompt_tokens}</td><td>{_ms(t.prefill_ms)}</td>"
                   f"<td>{t.generated_tokens}</td><td>{_ms(t.decode_ms)}</td><td>{t.tokens_per_s:.1f}</td>"
                   f"<td>{html.escape(organs)}</td></tr>")
    out.append("</table><h3>Case and record</h3><table cellspacing=4>")
    out += [_row("case", run.case.case_id), _row("CT hash", run.case.content_hash[:16] + "…"),
            _row("grid", f"{run.case.shape} voxels of {run.case.spacing_mm} mm"), _row("created", run.created),
            _row("tool version", run.tool_version)]
    if run_path:
        out.append(_row("run.json", run_path))
    out.append("</table>")
    if run.warnings:
        out.append("<h3>Warnings</h3><ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in run.warnings) + "</ul>")
    return "".join(out)


class RunDetailsDialog(QDialog):
    def __init__(self, run, run_path: str | None = None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Run details")
        self.resize(640, 640)
        self.run = run
        self.browser = QTextBrowser()
        self.browser.setHtml(run_details_html(run, run_path))
        copy = QPushButton("Copy run.json")
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(run.to_json()))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(copy, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.browser)
        lay.addWidget(buttons)
