"""The model card: what the model is, what it was trained on, how it did, and that it is not a
diagnostic device. Built from the model folder (config.json, README/MODEL_CARD, eval_summary.json,
EVAL.md) by ``model_card_markdown`` (no Qt) and shown as Markdown."""
from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout

NOT_A_DEVICE = ("> **Not a diagnostic device.** This is research software. Its output is a draft that a "
                "radiologist reviews, corrects and signs; it must not be used on its own for diagnosis or "
                "treatment decisions.")
CARD_NAMES = ("MODEL_CARD.md", "model_card.md", "README.md", "readme.md")


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _read_text(path: Path, limit: int = 20000) -> str:
    try:
        return path.read_text(encoding="utf-8")[:limit]
    except (OSError, UnicodeDecodeError):
        return ""


def model_card_markdown(folder: str | Path) -> str:
    folder = Path(folder).expanduser()
    cfg = _read_json(folder / "config.json")
    summary = _read_json(folder / "eval_summary.json")
    lines = [f"# Model card: {folder.name}", "", NOT_A_DEVICE, "", "## What it is", ""]
    if cfg:
        v = cfg.get("vision", {})
        weights = sum(p.stat().st_size for p in folder.rglob("*.safetensors"))
        lines += [
            "TumorChain (interleaved multimodal chain-of-thought over organ-guided reasoning rounds): a 3D ViT "
            "encodes the CT, a projector maps its tokens into a language model"
            + (", and an auxiliary classifier scores each examined organ's tokens as normal or abnormal."
               if cfg.get("organ_classifier", True) else "; no organ classifier in this model."), "",
            *[f"- {note}" for note in cfg.get("source_notes") or [] if isinstance(note, str)],
            f"- language model: {cfg.get('llm_model_type', '?')} (from `{cfg.get('llm_source', '?')}`), "
            f"width {cfg.get('llm_hidden_size', '?')}",
            f"- 3D encoder: input {v.get('img_size', '?')}, patches {v.get('patch_size', '?')}, "
            f"{v.get('num_layers', '?')} layers of width {v.get('hidden_size', '?')}",
            f"- organ tokens per organ: {cfg.get('n_organ_tokens', '?')} ({cfg.get('gamma_mode', 'tokens')} mode)",
            f"- weights: {weights / 1e6:.1f} MB of safetensors", ""]
    else:
        lines += [f"No readable config.json in {folder}.", ""]
    lines += card_section(folder)
    lines += ["## What it was trained on", ""]
    if summary:
        cohort = summary.get("cohort") or {}
        recipe = summary.get("recipe", {})
        cases = recipe.get("cohort", {}).get("cases")
        lines.append(f"Synthetic abdominal CT phantoms from the TumorChain synthetic cohort"
                     + (f" ({cases} cases" + (f", shape {recipe['cohort'].get('shape')}" if recipe.get("cohort") else "") + ")" if cases else "")
                     + ", with tumors, lymph nodes and metastases, and their chain-of-thought questions and answers. "
                     "No patient data.")
        if cohort:
            lines += ["", "| split | cases | questions |", "| --- | --- | --- |"]
            for name, split in cohort.items():
                if isinstance(split, dict):
                    n = split.get("cases")
                    lines.append(f"| {name} | {len(n) if isinstance(n, list) else n} | {split.get('samples', '?')} |")
        if summary.get("command"):
            lines += ["", f"Rebuilt by `{summary['command']}`."]
        train = summary.get("train", {})
        if train:
            lines.append(f"Training: {train.get('global_step', '?')} steps, {train.get('minutes', '?')} min.")
        lines.append("")
    else:
        lines += ["The model folder has no eval_summary.json; see its own card below, if any.", ""]
    lines += ["## Evaluation", ""]
    held = summary.get("heldout") if summary else None
    if held:
        lines += [f"Held-out **{held.get('split', 'test')}** split, {held.get('n_samples', '?')} samples, accuracy in %:", "",
                  held.get("table_md", "").strip(), ""]
        cls = summary.get("classifier") or {}
        if cls:
            lines.append(f"Auxiliary classifier: accuracy {100 * cls.get('accuracy', 0):.1f}% "
                         f"(majority class {100 * cls.get('majority_baseline', 0):.1f}%), ROC AUC {cls.get('auc', float('nan')):.3f} "
                         f"on {cls.get('n', '?')} held-out (case, organ) pairs.")
            lines.append("")
    else:
        lines += ["No evaluation table was found in the model folder (eval_summary.json).", ""]
    for name in CARD_NAMES:
        text = _read_text(folder / name)
        if text.strip():
            lines += [f"## The model's own card ({name})", "", text.strip(), ""]
            break
    extra = _read_text(folder / "EVAL.md")
    if extra.strip() and not held:
        lines += ["## EVAL.md", "", extra.strip(), ""]
    return "\n".join(lines) + "\n"


def card_section(folder: Path) -> list[str]:
    """The folder's model_card.json (inference/model/model_card.py): intended use, training domain,
    and the questions each task asks; or why there is none."""
    from inference.errors import InputError
    from inference.model.model_card import load_model_card

    try:
        card = load_model_card(folder)
    except InputError as exc:
        return ["## Tasks and training domain", "", f"The model card cannot be read: {exc}", ""]
    lines = ["## Tasks and training domain", ""]
    if card.is_default:
        return lines + [f"No model_card.json: {card.note}.", ""]
    d = card.domain
    if card.intended_use:
        lines += [f"**Intended use.** {card.intended_use}", ""]
    grids = "; ".join(f"{' x '.join(map(str, g.shape))} voxels at {' x '.join(f'{v:g}' for v in g.spacing_mm)} mm"
                      for g in d.grids) or "not declared"
    lines += [f"**Training domain:** {d.source.replace('_', ' ')}. {d.description}", "",
              f"- sampling grids: {grids} (spacing within {d.spacing_tolerance:.0%})"]
    if d.field_of_view_mm:
        lines.append(f"- field of view: {' x '.join(f'{v:g}' for v in d.field_of_view_mm)} mm")
    lines += ["", "A CT outside this domain gets a banner in the window and a warning in run.json and the report.",
              "", "Each task asks these questions, in order (one reasoning chain each):", "",
              "| task | step | question |", "| --- | --- | --- |"]
    for task, steps in card.tasks.items():
        lines += [f"| {task if i == 0 else ''} | {s.title} | {s.template} |" for i, s in enumerate(steps)]
    return lines + [""]


class ModelCardDialog(QDialog):
    def __init__(self, folder: str | Path, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Model card - {Path(folder).name}")
        self.resize(760, 720)
        self.markdown = model_card_markdown(folder)
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(False)
        self.browser.setMarkdown(self.markdown)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(self.browser)
        lay.addWidget(buttons)
