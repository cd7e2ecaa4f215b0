"""Every relative link and image in the README and docs/ points at a file (and heading) that exists."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_markdown_links_resolve():
    proc = subprocess.run([sys.executable, str(ROOT / "docs" / "check_links.py")], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout
