"""Entry point: ``python -m app.main [PATH] [--masks FILE]`` (also ``tumorchain-workstation``).

PATH is a NIfTI file, a DICOM folder, or a case folder holding ct.nii.gz + organs.nii.gz
(+ parts.nii.gz), such as resources/demo_case.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEMO_CASE = Path(__file__).resolve().parents[1] / "resources" / "demo_case"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tumorchain-workstation", description="TumorChain Workstation viewer")
    parser.add_argument("path", nargs="?", help="NIfTI file, DICOM folder or case folder to open")
    parser.add_argument("--masks", help="organ label NIfTI (TotalSegmentator 'total' or merged scheme)")
    parser.add_argument("--demo", action="store_true", help=f"open the demo case ({DEMO_CASE})")
    parser.add_argument("--screenshots", metavar="DIR",
                        help="after loading, save a PNG of each view to DIR and quit (reports, checks)")
    return parser.parse_args(argv)


def build_window(args: argparse.Namespace):
    """The main window, with the requested case loading (no event loop started)."""
    from app.main_window import MainWindow

    window = MainWindow()
    path = DEMO_CASE if args.demo else args.path
    if path:
        window.open_path(path, args.masks)
    return window


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("TumorChain Workstation")
    window = build_window(args)
    window.show()
    if args.screenshots:
        window.wait_for_load()
        if window.last_error:
            print(window.last_error, file=sys.stderr)
            return 1
        window.volume.build_visible_now()
        app.processEvents()
        for name, path in window.save_screenshots(args.screenshots).items():
            print(f"{name}: {path}")
        print(f"window: {window.save_window_png(Path(args.screenshots) / 'window.png')}")
        window.close()
        return 0
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
