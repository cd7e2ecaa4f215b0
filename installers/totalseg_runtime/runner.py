"""The segmentation runtime's one program: TotalSegmentator's worker (inference/segmentation/
totalseg_worker.py), frozen with the TotalSegmentator environment by PyInstaller so a machine without
Python or internet can run it. The workstation starts it as ``tumorchain-totalseg ARGS`` where it
would otherwise start ``<env python> totalseg_worker.py ARGS`` (totalseg_backend.py); the arguments,
the TCEVENT lines and the exit codes are the same.
"""
import multiprocessing
import os
import sys


def _honour_pythonpath() -> None:
    """A frozen program ignores PYTHONPATH and runs no ``site`` module; do what an interpreter would
    (prepend the folders, import a sitecustomize found there), so the runtime behaves like the env's
    python it replaces. The backend never passes the workstation's own PYTHONPATH on (it scrubs it);
    only a caller that asks sets one (the tests put their model-call fake there)."""
    folders = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if not folders:
        return
    sys.path[:0] = [f for f in folders if f not in sys.path]
    for folder in folders:
        if os.path.isfile(os.path.join(folder, "sitecustomize.py")):
            import sitecustomize  # noqa: F401  (imported for its effect, as site.py does)
            break


def main() -> None:
    multiprocessing.freeze_support()  # TotalSegmentator / nnU-Net worker pools re-enter this program
    _honour_pythonpath()
    import totalseg_worker  # bundled from inference/segmentation (the spec's pathex)

    totalseg_worker.run_program()


if __name__ == "__main__":
    main()
