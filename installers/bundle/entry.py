"""The bundle's one executable: the workstation, or with ``cli`` first the ``tumorchain`` command line.

    tumorchain-workstation [app options]      (app/main.py)
    tumorchain-workstation cli ARGS...        (inference/cli.py; bin/tumorchain calls this)

One executable keeps one copy of Python, torch and Qt in the bundle (PyInstaller would analyse and
collect a second entry point separately).
"""
import multiprocessing
import os
import sys


def main() -> int:
    multiprocessing.freeze_support()  # a frozen program re-entered as a multiprocessing child
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(key, "1")  # never reach the network, whatever the launcher did
    # transformers 5 kernelizes layers with Hub kernels by default (use_kernels=None -> True), which
    # needs the `kernels` package and downloads; the bundle has neither, so loading the LLM failed
    # with "Kernels are not available". Off, as a workstation never fetches code at run time.
    os.environ.setdefault("USE_HUB_KERNELS", "NO")
    if len(sys.argv) > 1 and sys.argv[1] == "cli":
        from inference.cli import main as cli_main

        return cli_main(sys.argv[2:])
    from app.main import main as app_main

    return app_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
