"""The Windows .ico and macOS .icns the PyInstaller spec uses are drawn from the SVG icon at build time
(installers/bundle/make_icons.py): every size an OS asks for is there, and the pixels are the SVG's."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAKE_ICONS = ROOT / "installers" / "bundle" / "make_icons.py"
# (x, y) on the 256 px SVG canvas -> its RGBA: background, the lesion, a chain dot, the transparent corner
PROBES = {(128, 20): (0x20, 0x23, 0x2A, 255), (142, 118): (0xF0, 0x8C, 0x7A, 255),
          (218, 58): (0x8F, 0xD1, 0x9E, 255), (2, 2): (0, 0, 0, 0)}


def close(a, b, tol=6) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b))


@pytest.fixture(scope="module")
def icons(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("icons")
    run = subprocess.run([sys.executable, str(MAKE_ICONS), str(out)], capture_output=True, text=True, timeout=120,
                         env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    return out


def test_ico_has_windows_sizes_and_the_svg_pixels(icons):
    from PIL import Image

    ico = Image.open(icons / "tumorchain.ico")
    assert ico.format == "ICO"
    assert {(s, s) for s in (16, 24, 32, 48, 64, 128, 256)} <= set(ico.info["sizes"])
    ico.size = (256, 256)
    big = ico.convert("RGBA")
    for (x, y), rgba in PROBES.items():
        assert close(big.getpixel((x, y)), rgba), ((x, y), big.getpixel((x, y)))
    ico.size = (16, 16)
    small = ico.convert("RGBA")
    assert small.size == (16, 16) and small.getpixel((0, 0))[3] == 0 and small.getpixel((8, 8))[3] == 255


def test_icns_has_macos_sizes_and_the_svg_pixels(icons):
    from PIL import Image

    icns = Image.open(icons / "tumorchain.icns")
    assert icns.format == "ICNS" and icns.size == (1024, 1024)
    assert {(512, 512, 2), (256, 256, 1), (128, 128, 1), (16, 16, 2)} <= set(icns.info["sizes"])
    big = icns.convert("RGBA")
    for (x, y), rgba in PROBES.items():
        assert close(big.getpixel((4 * x, 4 * y)), rgba), ((x, y), big.getpixel((4 * x, 4 * y)))


def test_spec_and_installer_use_the_generated_icons():
    spec = (ROOT / "installers" / "bundle" / "tumorchain.spec").read_text()
    assert "make_icons.py" in spec and '"tumorchain.ico"' in spec and '"tumorchain.icns"' in spec
    iss = (ROOT / "installers" / "windows" / "tumorchain.iss").read_text()
    assert r"SetupIconFile=..\..\build\icons\tumorchain.ico" in iss
