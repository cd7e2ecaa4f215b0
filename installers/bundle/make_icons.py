"""Make the Windows .ico and macOS .icns the PyInstaller spec uses from the one SVG icon
(installers/linux/tumorchain-workstation.svg): Qt's SVG renderer draws it at each size, Pillow writes
the icon files. Generated at build time (installers/bundle/tumorchain.spec runs it), never committed.

    python installers/bundle/make_icons.py OUT_DIR   -> OUT_DIR/tumorchain.ico, OUT_DIR/tumorchain.icns
"""
from __future__ import annotations

import io
import os
import sys
from pathlib import Path

SVG = Path(__file__).resolve().parents[1] / "linux" / "tumorchain-workstation.svg"
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)  # what Windows Explorer and the taskbar ask for
ICNS_SIZES = (16, 32, 64, 128, 256, 512, 1024)  # macOS's icon sizes (1024 is 512@2x)


def render_png(size: int, svg: Path = SVG) -> bytes:
    """The SVG drawn at size x size, transparent around it, as PNG bytes."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication([])  # noqa: F841  (QPainter wants one)
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise ValueError(f"{svg}: not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    data = QByteArray()
    buf = QBuffer(data)
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buf, "PNG")
    return bytes(data)


def make_icons(out_dir: Path, svg: Path = SVG) -> tuple[Path, Path]:
    from PIL import Image

    out_dir.mkdir(parents=True, exist_ok=True)
    images = {s: Image.open(io.BytesIO(render_png(s, svg))).convert("RGBA") for s in sorted(set(ICO_SIZES + ICNS_SIZES))}
    ico, icns = out_dir / "tumorchain.ico", out_dir / "tumorchain.icns"
    # each size drawn from the vector (sharper small icons than one image scaled down)
    images[256].save(ico, format="ICO", sizes=[(s, s) for s in ICO_SIZES],
                     append_images=[images[s] for s in ICO_SIZES if s != 256])
    images[1024].save(icns, format="ICNS", append_images=[images[s] for s in ICNS_SIZES if s != 1024])
    return ico, icns


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    for path in make_icons(Path(sys.argv[1])):
        print(f"{path} ({path.stat().st_size} bytes)")
