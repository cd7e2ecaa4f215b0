"""Entry point: ``python -m app.main [PATH] [--masks FILE]`` (also ``tumorchain-workstation``).

PATH is a NIfTI file, a DICOM folder, or a case folder holding ct.nii.gz + organs.nii.gz
(+ parts.nii.gz), such as resources/demo_case. ``--demo`` opens that case with its masks, ready
to Analyze with the model set in Settings (the shipped demo model by default). Nothing runs by
itself unless asked: ``--analyze TASK`` (or ``--question``) analyzes once the case is open.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from inference.vocabulary import DEVICES, TASKS

DEMO_CASE = Path(__file__).resolve().parents[1] / "resources" / "demo_case"
TASK_CHOICES = TASKS


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tumorchain-workstation", description="TumorChain Workstation")
    parser.add_argument("path", nargs="?", help="NIfTI file, DICOM folder or case folder to open")
    parser.add_argument("--masks", help="organ label NIfTI (TotalSegmentator 'total' or merged scheme)")
    parser.add_argument("--demo", action="store_true", help=f"open the demo case ({DEMO_CASE})")
    parser.add_argument("--screenshots", metavar="DIR",
                        help="once the case is open (and --analyze/--question/--script are done), save PNGs of "
                        "each view, the window, the reasoning panel, the export dialog and the model card to DIR, "
                        "then quit (the README's pictures)")
    parser.add_argument("--size", metavar="WxH", default=None,
                        help="window size, e.g. 1700x1000 (the README's pictures)")
    parser.add_argument("--model", metavar="DIR", help="model folder for this session (Settings keep theirs)")
    parser.add_argument("--device", choices=DEVICES, help="device for this session")
    parser.add_argument("--max-rounds", type=int, help="IIR round limit for this session")
    parser.add_argument("--max-new-tokens", type=int, help="tokens per round for this session")
    parser.add_argument("--profile", metavar="DIR",
                        help="keep settings and reviews in DIR instead of the user's (tests, demos, kiosks)")
    parser.add_argument("--analyze", choices=TASK_CHOICES, metavar="TASK",
                        help=f"analyze once the case is open: {', '.join(TASK_CHOICES)}")
    parser.add_argument("--organ", help="narrow --analyze to an organ (display name, e.g. pancreas)")
    parser.add_argument("--question", help="analyze this question once the case is open")
    parser.add_argument("--allow-non-ct", action="store_true",
                        help="with --analyze/--question: analyze even a volume that does not look like CT "
                        "(the run records the override)")
    parser.add_argument("--script", metavar="JSON", help="review steps to run after opening/analyzing (app/script_hook.py)")
    parser.add_argument("--dump-state", metavar="JSON", help="write what the reasoning panel shows, then quit")
    parser.add_argument("--quit-after", action="store_true", help="quit when the scripted work is done")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for a scripted analysis")
    args = parser.parse_args(argv)
    if args.analyze and args.question:
        parser.error("give --analyze or --question, not both")
    if args.size is not None:
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
            assert w > 0 and h > 0
        except (ValueError, AssertionError):
            parser.error(f"--size takes WIDTHxHEIGHT in pixels, e.g. 1700x1000; got {args.size!r}")
        args.size = (w, h)
    return args


def build_window(args: argparse.Namespace, **kwargs):
    """The main window, with the requested case loading (no event loop started)."""
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow
    from app.settings import load_settings
    from app.theme import apply_theme

    app = QApplication.instance()
    if app is not None and not app.property("tumorchain_theme"):
        apply_theme(app)
        app.setProperty("tumorchain_theme", True)
    settings = load_settings()
    overrides = {k: v for k, v in (("model_dir", args.model), ("device", args.device),
                                   ("max_rounds", args.max_rounds), ("max_new_tokens", args.max_new_tokens))
                 if v is not None}
    if overrides.get("model_dir"):
        overrides["model_dir"] = str(Path(overrides["model_dir"]).expanduser().resolve())
    window = MainWindow(settings=replace(settings, **overrides).validated(), **kwargs)
    path = DEMO_CASE if args.demo else args.path
    if path:
        window.open_path(path, args.masks)
    return window


def main(argv: list[str] | None = None) -> int:
    import os

    args = parse_args(sys.argv[1:] if argv is None else argv)
    from app.settings import ENV_PROFILE, use_profile

    if args.profile or os.environ.get(ENV_PROFILE):
        use_profile(args.profile or os.environ[ENV_PROFILE])
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("TumorChain Workstation")
    app.setOrganizationName("TumorChain")
    splash = None
    if not args.screenshots:
        from app.startup import preimport, with_splash

        _, splash = with_splash(app, preimport)
    scripted_run = bool(args.analyze or args.question or args.script)
    window = build_window(args, preload_model=not (args.screenshots or args.dump_state) or scripted_run)
    if args.size:
        window.resize(*args.size)
    window.show()
    if splash is not None:
        splash.finish(window)
    if args.screenshots:
        from app.readme_pictures import save_pictures
        from app.script_hook import autopilot

        window.wait_for_load()
        if window.last_error and window.controller.ct is None:
            print(window.last_error, file=sys.stderr)
            return 1
        code = autopilot(window, args)  # --analyze, --script and --dump-state, in that order
        if code not in (None, 0):
            window.close()
            return code
        for name, path in save_pictures(window, args.screenshots).items():
            print(f"{name}: {path}")
        window.close()
        return 0
    if args.analyze or args.question or args.script or args.dump_state or args.quit_after:
        from app.script_hook import autopilot

        def scripted() -> None:
            code = autopilot(window, args)
            if code is not None:
                window.close()
                app.exit(code)

        QTimer.singleShot(0, scripted)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
