"""The pictures ``--screenshots DIR`` saves of the window as it is (after ``--analyze`` and
``--script``, when given): each view at native resolution, the whole window (workstation.png),
the reasoning panel ending on the conclusion (reasoning_panel.png), the export dialog and the model
card. The README's pictures are these, made by one command (README, "Workstation")."""
from __future__ import annotations

import io
from pathlib import Path

MAX_BYTES = 290_000  # a README picture stays small in the repository


def save_small_png(image, path: Path, max_bytes: int = MAX_BYTES) -> Path:
    """Save a PIL image as PNG under ``max_bytes`` (fewer colours first, then smaller)."""
    from PIL import Image

    img = image.convert("RGB")
    for attempt in range(8):
        candidate = img if attempt == 0 else img.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        buf = io.BytesIO()
        candidate.save(buf, format="PNG", optimize=True)
        if buf.tell() <= max_bytes:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(buf.getvalue())
            return path
        if attempt >= 1:
            img = img.resize((int(img.width * 0.88), int(img.height * 0.88)), Image.Resampling.LANCZOS)
    raise ValueError(f"{path}: could not get the picture under {max_bytes} bytes")


def grab_widget(widget):
    from PIL import Image
    from PySide6.QtCore import QBuffer, QIODevice

    buf = QBuffer()
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    widget.grab().save(buf, "PNG")
    return Image.open(io.BytesIO(bytes(buf.data())))


def _settle(ms: int = 300) -> None:
    from app.script_hook import pump

    pump(ms)


def save_pictures(win, folder: str | Path) -> dict[str, Path]:
    """Every picture of the window as it stands: {name: path}."""
    from PIL import Image

    from app.export_dialog import ExportDialog
    from app.model_card_dialog import ModelCardDialog

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    win.volume.build_visible_now()
    _settle()
    saved = dict(win.save_screenshots(folder))
    tmp = folder / ".window.tmp.png"
    win.save_window_png(tmp)
    saved["workstation"] = save_small_png(Image.open(tmp), folder / "workstation.png")
    tmp.unlink(missing_ok=True)
    panel = win.panel
    if panel.conclusion.isVisible():
        bar = panel.scroll.verticalScrollBar()
        bar.setValue(bar.maximum())  # the panel picture ends on the conclusion
        _settle()
        saved["reasoning_panel"] = save_small_png(grab_widget(panel), folder / "reasoning_panel.png")
    dlg = ExportDialog(Path.home() / "TumorChain exports" / "demo_case", "the CT did not come from DICOM", False, win)
    dlg.show()
    _settle()
    saved["export_dialog"] = save_small_png(grab_widget(dlg), folder / "export_dialog.png")
    dlg.close()
    if win.settings.model_dir and (Path(win.settings.model_dir) / "config.json").is_file():
        card = ModelCardDialog(win.settings.model_dir, win)
        card.resize(860, 700)
        card.show()
        _settle()
        saved["model_card"] = save_small_png(grab_widget(card), folder / "model_card.png")
        card.close()
    return saved
