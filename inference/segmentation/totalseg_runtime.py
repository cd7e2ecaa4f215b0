"""The segmentation runtime: TotalSegmentator's worker frozen together with its environment
(installers/build_totalseg_runtime.sh, PyInstaller onedir), for machines without Python or internet.

    <folder>/tumorchain-totalseg[.exe]   the worker as a program (same arguments, events, exit codes)
    <folder>/_internal/                   its Python, torch, nnU-Net, TotalSegmentator
    <folder>/RUNTIME-INFO.json            {"format": "tumorchain-totalseg-runtime", "totalsegmentator": ...}

Where the workstation looks: ``$TUMORCHAIN_TOTALSEG_RUNTIME`` (the bundle's launcher sets it to a
runtime beside the bundle), else ``<user data>/totalseg-runtime``, where a weights pack installs it
(``tumorchain weights import``). Standard library only.
"""
from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

ENV_RUNTIME = "TUMORCHAIN_TOTALSEG_RUNTIME"
PROGRAM = "tumorchain-totalseg"
INFO_FILE = "RUNTIME-INFO.json"
INFO_FORMAT = "tumorchain-totalseg-runtime"
FOLDER_NAME = "totalseg-runtime"


def user_data_dir() -> Path:
    """The workstation's per-user data folder (models and the runtime are installed under it)."""
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "TumorChain"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "TumorChain"
    return Path(os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")) / "tumorchain"


def default_runtime_dir() -> Path:
    if os.environ.get(ENV_RUNTIME):
        return Path(os.environ[ENV_RUNTIME]).expanduser()
    return user_data_dir() / FOLDER_NAME


def this_platform() -> str:
    """As RUNTIME-INFO.json spells it (the build machine's platform.system/machine)."""
    return f"{platform.system().lower()}-{platform.machine()}"


def program_path(folder: Path) -> Path:
    return Path(folder) / (PROGRAM + (".exe" if os.name == "nt" else ""))


def read_info(folder: Path) -> dict:
    """RUNTIME-INFO.json; ValueError saying what is wrong with it."""
    path = Path(folder) / INFO_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{INFO_FILE} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{INFO_FILE} is unreadable ({exc})") from None
    if not isinstance(info, dict) or info.get("format") != INFO_FORMAT:
        raise ValueError(f"{INFO_FILE} does not describe a TotalSegmentator runtime")
    return info


def runtime_problem(folder: Path, check_platform: bool = True) -> str | None:
    """None when ``folder`` holds a runtime this machine can start, else what is wrong
    (``check_platform=False``: a complete runtime for any platform, as a pack may carry one elsewhere)."""
    folder = Path(folder)
    if not folder.is_dir():
        return f"{folder} does not exist"
    try:
        info = read_info(folder)
    except ValueError as exc:
        return str(exc)
    if check_platform and info.get("platform") and info["platform"] != this_platform():
        return f"it was built for {info['platform']}, this machine is {this_platform()}"
    program = program_path(folder)
    if not program.is_file():
        return f"{program.name} is missing"
    if os.name == "posix" and not os.access(program, os.X_OK):
        return f"{program.name} is not executable (its permissions were lost in copying?)"
    if not (folder / "_internal").is_dir():
        return "_internal/ is missing (incomplete copy?)"
    return None
