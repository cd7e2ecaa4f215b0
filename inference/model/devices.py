"""Where the model runs, whether it fits, and the promise that nothing reaches the network.

Importing this module switches Hugging Face libraries to offline mode; every loader in this
package also passes local_files_only=True, so a missing file is an error, never a download.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from inference.ct_io.memory_guard import available_memory_bytes
from inference.errors import ModelError

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
HEADROOM = 1.05  # activations, CUDA context and fragmentation on top of the weights


def set_offline() -> None:
    """Force Hugging Face offline mode, also when huggingface_hub was imported before us
    (it reads HF_HUB_OFFLINE once, at import)."""
    os.environ.update(OFFLINE_ENV)
    hub_constants = sys.modules.get("huggingface_hub.constants")
    if hub_constants is not None:
        hub_constants.HF_HUB_OFFLINE = True


set_offline()


@dataclass(frozen=True)
class Placement:
    """The device and floating dtype the model lives in."""

    device: torch.device
    dtype: torch.dtype


def pick_device(device: str | torch.device | None = None, dtype: torch.dtype | str | None = None) -> Placement:
    """CUDA with bf16 when present (fp16 on GPUs without bf16), else CPU with float32."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError("a CUDA device was asked for, but torch finds no CUDA GPU on this machine")
    if isinstance(dtype, str):
        dtype = dtype_from_name(dtype)
    if dtype is None:
        if device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            dtype = torch.float32
    return Placement(device=device, dtype=dtype)


def dtype_from_name(name: str) -> torch.dtype:
    names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if name not in names:
        raise ModelError(f"unknown dtype {name!r}; use one of {sorted(names)}")
    return names[name]


def free_memory(device: torch.device) -> int | None:
    """Bytes still free on the device (GPU memory, or RAM for the CPU); None if unknown."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    return available_memory_bytes()


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def describe_need(what: str, folder: str | Path, n_params: int, dtype: torch.dtype, device: torch.device) -> str:
    """'<folder>: <what> has 3.09 B parameters; in bfloat16 that is 5.8 GiB, cuda:0 has 3.2 GiB free'."""
    need = n_params * torch.empty((), dtype=dtype).element_size()
    free = free_memory(device)
    free_text = f"{device} has {_gib(free)} free" if free is not None else f"free memory on {device} is unknown"
    return (f"{folder}: {what} has {n_params / 1e9:.2f} B parameters; in {str(dtype).removeprefix('torch.')} "
            f"that is {_gib(need)}, {free_text}")


def check_fits(what: str, folder: str | Path, n_params: int, dtype: torch.dtype, device: torch.device) -> None:
    """Refuse before allocating when the weights alone cannot fit in the free memory."""
    need = n_params * torch.empty((), dtype=dtype).element_size() * HEADROOM
    free = free_memory(device)
    if free is not None and need > free:
        raise ModelError(
            "not enough memory: " + describe_need(what, folder, n_params, dtype, device)
            + "; close other programs, pick a smaller model, or another device/dtype"
        )


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


@contextmanager
def memory_errors_as_model_error(what: str, folder: str | Path, n_params: int, dtype: torch.dtype,
                                 device: torch.device) -> Iterator[None]:
    """Turn an out-of-memory failure while loading into a ModelError naming sizes and memory."""
    try:
        yield
    except Exception as error:  # noqa: BLE001 - re-raised unless it is an out-of-memory error
        if not is_out_of_memory(error):
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        raise ModelError("ran out of memory loading the model: "
                         + describe_need(what, folder, n_params, dtype, device)) from error


_THREAD_CAP: int | None = None  # torch's thread count before the first fit_cpu_threads (the caller's cap)


def fit_cpu_threads() -> int:
    """Run CPU inference on the cores other jobs leave free (1-min load average), at most the thread
    count the process had at the first call (the window keeps a core for the GUI); at least 1.

    Why: every OpenMP parallel region of a forward waits for its slowest thread, and a thread on a
    core busy with another job waits a scheduler time slice. On this 2-core box with other jobs
    running, 2 threads made a shared round's prefill cost 3.8 s whatever its length (79 tokens as
    much as 152) against 0.1 s fixed + 12 ms a token with 1 thread (benchmarks/bench_iir.py prefill
    sweep). OMP_NUM_THREADS or TUMORCHAIN_THREADS set by the user win."""
    global _THREAD_CAP
    import os

    if _THREAD_CAP is None:
        _THREAD_CAP = torch.get_num_threads()
    fixed = os.environ.get("TUMORCHAIN_THREADS") or os.environ.get("OMP_NUM_THREADS")
    if fixed and fixed.isdigit() and int(fixed) > 0:
        wanted = int(fixed)
    else:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        wanted = max(1, min(_THREAD_CAP, (os.cpu_count() or 1) - int(round(load))))
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
    return wanted
