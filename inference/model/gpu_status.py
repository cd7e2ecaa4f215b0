"""Whether torch can use a GPU here, and if not, why, in words a user or IT can act on."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GpuStatus:
    found: bool
    text: str  # "GPU found: NVIDIA H100 (CUDA 12.8)" or the reason none is used


def gpu_status() -> GpuStatus:
    try:
        import torch
    except Exception as exc:  # a broken torch install: say so, do not crash the caller
        return GpuStatus(False, f"torch cannot be imported ({exc}): the model cannot run")
    build = torch.__version__
    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return GpuStatus(False, f"No GPU: this torch is a CPU-only build ({build}); the model runs on the CPU. "
                         "The CUDA variant of the bundle uses an NVIDIA GPU.")
    try:
        if torch.cuda.is_available():
            name = torch.cuda.get_device_name(0)
            n = torch.cuda.device_count()
            return GpuStatus(True, f"GPU found: {name}{f' (+{n - 1} more)' if n > 1 else ''}, "
                             f"torch {build} with CUDA {torch.version.cuda}")
    except Exception as exc:
        return GpuStatus(False, f"GPU check failed ({exc}); the model runs on the CPU")
    if not Path("/proc/driver/nvidia/version").exists() and not _has_nvidia_lib():
        return GpuStatus(False, f"No GPU: torch {build} is a CUDA {torch.version.cuda} build, but no NVIDIA "
                         "driver is installed (or no NVIDIA GPU is present); the model runs on the CPU.")
    return GpuStatus(False, f"No usable GPU: the NVIDIA driver is present but torch {build} (CUDA "
                     f"{torch.version.cuda}) cannot use it (driver too old for this CUDA, or "
                     "CUDA_VISIBLE_DEVICES hides it); the model runs on the CPU.")


def _has_nvidia_lib() -> bool:
    import ctypes.util

    return ctypes.util.find_library("cuda") is not None
