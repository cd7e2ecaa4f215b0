"""Process setup for a run: CPU or GPU, DeepSpeed's accelerator, its config, and rank information.

DeepSpeed picks its accelerator when first imported, so ``setup_environment`` runs before anything
imports it: on a machine without CUDA (or with device "cpu") it selects DeepSpeed's CPU
accelerator (collectives over gloo) and skips the optional shared-memory all-reduce kernel, which
DeepSpeed would otherwise compile with a C++ toolchain on first use. The ZeRO JSON files are the
GPU settings; on CPU, ``deepspeed_config`` turns off what gloo cannot do (communication overlap on
CUDA streams, reduce-scatter).
"""
from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import torch

from inference.errors import InputError

DS_DIR = Path(__file__).resolve().parent / "deepspeed"
DS_NAMES = {"zero2": DS_DIR / "zero2.json", "zero3": DS_DIR / "zero3.json"}
log = logging.getLogger("tumorchain.training")


def use_cpu(device: str | None) -> bool:
    return device == "cpu" or not torch.cuda.is_available()


def setup_environment(device: str | None) -> bool:
    """Environment for this process; returns True when the run is on the CPU."""
    cpu = use_cpu(device)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if cpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    warnings.filterwarnings("ignore", message=".*all_gather_into_tensor.*is deprecated.*")
    warnings.filterwarnings("ignore", message=".*torch.distributed.reduce_op.*")
    for name in ("DeepSpeed", "deepspeed", "torch.distributed.elastic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return cpu


def quiet_deepspeed_on_cpu() -> None:
    """Skip DeepSpeed's optional shm all-reduce kernel (a JIT C++ build) on CPU runs: gloo does it."""
    import importlib

    try:
        # by name: ``import deepspeed.comm.torch as m`` can bind PyTorch itself (deepspeed.comm.torch attribute)
        ds_torch_comm = importlib.import_module("deepspeed.comm.torch")
    except ImportError:
        return
    if hasattr(ds_torch_comm, "build_shm_op"):
        ds_torch_comm.build_shm_op = lambda: None


def deepspeed_config(name_or_path: str, cpu: bool) -> dict:
    """A ZeRO config dict ("zero2", "zero3" or a JSON file), adapted to CPU runs."""
    path = DS_NAMES.get(name_or_path, Path(name_or_path))
    try:
        cfg = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(path, "DeepSpeed config not found (use zero2, zero3 or a JSON file)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(path, f"unreadable DeepSpeed config: {exc}") from None
    if cpu:
        zero = cfg.setdefault("zero_optimization", {})
        zero["overlap_comm"] = False  # CUDA streams
        zero["reduce_scatter"] = False  # not a gloo collective; all-reduce instead
        cfg["bf16"] = {"enabled": False}
        cfg["fp16"] = {"enabled": False}
    return cfg


def dist_info() -> tuple[int, int, int, int]:
    """(rank, world size, local rank, local world size) from the launcher's environment."""
    env = os.environ
    rank = int(env.get("RANK", 0))
    world = int(env.get("WORLD_SIZE", 1))
    local = int(env.get("LOCAL_RANK", 0))
    local_world = int(env.get("LOCAL_WORLD_SIZE", world if world > 0 else 1))
    return rank, world, local, local_world


def barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def shutdown_distributed() -> None:
    """End this process's part of a distributed run after it succeeded: all ranks meet, then the
    process group goes. Left to interpreter exit, gloo's worker threads can outlive Python and
    abort the process (SIGABRT, "terminate called without an active exception") after a run that
    finished and saved everything. Only on success: a rank that failed would leave the others
    waiting here (the launcher stops them instead)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
