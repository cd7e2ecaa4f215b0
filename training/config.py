"""TrainConfig: every setting of a training run in one JSON/YAML-serialisable dataclass.

Defaults are the paper's Table 5 (appendix 10.1): AdamW, lr 3e-5, cosine decay, warmup ratio 0.03,
weight decay 0, bf16, gradient accumulation 2, per-device batch 2, 16 dataloader workers (capped by
the cores each process has: ``dataloader_workers`` None = min(16, cores per process - 1)), 1 epoch,
and alpha = 1.0 for the classification loss (section 4.3, the best setting of Table 8).

A run reads a config file (``--config run.yaml`` or ``.json``) and then command-line overrides
(``--learning-rate 1e-4 --lora``; every field has a flag, see ``tumorchain-train train --help``).
The resolved config is written to ``<output_dir>/train_config.json`` so that a run can be
resumed or exported from its folder alone.
"""
from __future__ import annotations

import argparse
import json
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from inference.errors import InputError

CONFIG_FILE = "train_config.json"
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class TrainConfig:
    # -- data --------------------------------------------------------------------------------
    train_manifest: str = ""
    eval_manifest: str | None = None
    cache_dir: str | None = None  # preprocessed cases; default <output_dir>/case_cache
    segmentation: str = "totalsegmentator"  # backend for samples whose masks are null
    cls_organs: str = "labeled"  # "labeled": every organ in organ_labels; "roi": only the chain's organs
    group_by_case: bool = True  # batches hold samples of one case where possible: one encoder pass
    max_samples: int | None = None  # use the first N samples (smoke tests)
    # -- model: fine-tune a saved TumorChain folder, or build one from a base LLM ------------
    model: str | None = None  # a from_pretrained folder
    llm: str | None = None  # a Hugging Face causal-LM folder (Qwen2.5-VL-3B/7B, qwen2, ...)
    model_config: str | None = None  # TumorChainConfig JSON for a new model (with llm)
    vision_weights: str | None = None  # converted M3D encoder safetensors (with llm)
    # -- paper Table 5 -------------------------------------------------------------------------
    optimizer: str = "adamw_torch"
    learning_rate: float = 3e-5
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    max_grad_norm: float = 1.0
    bf16: bool = True  # ignored on CPU (fp32 there), with a log line saying so
    gradient_accumulation_steps: int = 2
    per_device_batch_size: int = 2
    dataloader_workers: int | None = None  # None: the paper's 16, capped by this process's cores (workers_for_cores)
    num_epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides num_epochs
    # -- the joint loss (eq. 8) ----------------------------------------------------------------
    cls_loss_weight: float = 1.0  # alpha
    # -- what trains -----------------------------------------------------------------------------
    freeze_encoder: bool = False
    frozen_encoder_cache_mb: int = 0  # with freeze_encoder: keep each case's encoder outputs in memory (up to this, on the device)
    freeze_projector: bool = False
    freeze_llm: bool = False
    freeze_classifier: bool = False
    lora: bool = False  # LoRA adapters on the LLM (the LLM's own weights then stay frozen)
    lora_r: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(default_factory=lambda: list(LORA_TARGETS))
    gradient_checkpointing: bool = False
    # -- distributed ---------------------------------------------------------------------------
    deepspeed: str | None = None  # "zero2", "zero3" or a DeepSpeed JSON file
    ddp_timeout_s: int = 7200  # collective timeout: first-step cache building and slow storage need it
    # -- bookkeeping -----------------------------------------------------------------------------
    output_dir: str = "runs/tumorchain"
    logging_steps: int = 10
    save_steps: int = 500
    save_total_limit: int | None = 2
    save_on_each_node: bool = False  # True when output_dir is node-local (not shared storage)
    seed: int = 0
    resume_from_checkpoint: str | None = None  # a checkpoint folder, or "latest" in output_dir
    report_to: str = "none"  # "tensorboard", "wandb", ... when installed
    device: str | None = None  # "cpu" forces CPU; default: CUDA when present
    num_threads: int | None = None  # torch CPU threads per process (1 avoids oversubscription on shared CPUs)

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))

    def problems(self) -> list[str]:
        out = []
        if self.cls_organs not in ("labeled", "roi"):
            out.append(f"cls_organs must be 'labeled' or 'roi', got {self.cls_organs!r}")
        for name in ("learning_rate", "per_device_batch_size", "gradient_accumulation_steps", "lora_r"):
            if getattr(self, name) <= 0:
                out.append(f"{name} must be positive")
        if not 0.0 <= self.warmup_ratio < 1.0:
            out.append("warmup_ratio must be in [0, 1)")
        if self.dataloader_workers is not None and self.dataloader_workers < 0:
            out.append("dataloader_workers must be >= 0 (0: load in the training process)")
        if self.cls_loss_weight < 0:
            out.append("cls_loss_weight (alpha) must be >= 0")
        if self.lora and self.freeze_llm:
            out.append("lora and freeze_llm together train nothing in the LLM; choose one")
        return out

    # -- files -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | Path | None = None) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(source, f"unknown training settings {unknown}; see `tumorchain-train train --help`")
        try:
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise InputError(source, f"invalid training config: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        return cls.from_dict(read_config_file(path), path)

    @property
    def workers(self) -> int:
        """Data-loader worker processes this run uses: the setting, or by default as many as the cores allow."""
        if self.dataloader_workers is not None:
            return int(self.dataloader_workers)
        return workers_for_cores(available_cores(), int(os.environ.get("LOCAL_WORLD_SIZE", "1")))

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else Path(self.output_dir) / "case_cache"


# What each setting does, for ``tumorchain-train train --help`` (tests check every field has one).
FIELD_HELP: dict[str, str] = {
    "train_manifest": "JSONL manifest of training samples (training/manifest.py); required",
    "eval_manifest": "JSONL manifest evaluated during training (optional)",
    "cache_dir": "folder of preprocessed cases (default: <output_dir>/case_cache); share it between runs",
    "segmentation": "segmentation backend for samples whose masks are null",
    "cls_organs": "which organs the auxiliary classifier trains on: 'labeled' (every organ with a label) or "
                  "'roi' (only the chain's organs)",
    "group_by_case": "batch samples of one case together, so the encoder runs once per case and batch",
    "max_samples": "use only the first N samples (smoke tests)",
    "model": "a TumorChain model folder to fine-tune (e.g. resources/demo_model)",
    "llm": "a local Hugging Face causal-LM folder to build a new model around (with --model-config)",
    "model_config": "TumorChainConfig JSON for a new model built with --llm",
    "vision_weights": "converted M3D encoder safetensors for a new model (python -m inference.model.convert_m3d)",
    "optimizer": "Hugging Face optimizer name",
    "learning_rate": "peak learning rate",
    "lr_scheduler": "Hugging Face scheduler name",
    "warmup_ratio": "fraction of the steps spent warming the learning rate up, in [0, 1)",
    "weight_decay": "AdamW weight decay",
    "adam_beta1": "AdamW beta1",
    "adam_beta2": "AdamW beta2",
    "max_grad_norm": "gradient clipping norm",
    "bf16": "train in bfloat16 (GPU; CPU trains in float32 and logs it)",
    "gradient_accumulation_steps": "batches accumulated per optimizer step",
    "per_device_batch_size": "samples per batch on each device",
    "dataloader_workers": "data-loader worker processes (default: min(16, cores per process - 1); 0 loads in "
                          "the training process)",
    "num_epochs": "passes over the training samples",
    "max_steps": "optimizer steps to run; > 0 overrides --num-epochs",
    "cls_loss_weight": "alpha of eq. 8: weight of the classifier's loss beside the LM loss",
    "freeze_encoder": "keep the vision encoder's weights fixed",
    "frozen_encoder_cache_mb": "with --freeze-encoder: keep each case's encoder outputs in memory, up to this "
                               "many MB, so the encoder runs once per case",
    "freeze_projector": "keep the projector's weights fixed",
    "freeze_llm": "keep the LLM's weights fixed",
    "freeze_classifier": "keep the auxiliary classifier's weights fixed",
    "lora": "train LoRA adapters on the LLM instead of its weights (export merges them)",
    "lora_r": "LoRA rank",
    "lora_alpha": "LoRA scaling alpha",
    "lora_dropout": "LoRA dropout",
    "lora_targets": "LLM modules that get LoRA adapters",
    "gradient_checkpointing": "recompute the LLM's activations in the backward pass (less memory, slower)",
    "deepspeed": "'zero2', 'zero3' or a DeepSpeed JSON file",
    "ddp_timeout_s": "seconds a collective may wait (first-step cache building and slow storage need it)",
    "output_dir": "folder for checkpoints, train_log.jsonl, train_config.json and final/",
    "logging_steps": "log losses every N optimizer steps",
    "save_steps": "save a checkpoint every N optimizer steps",
    "save_total_limit": "keep at most N checkpoints",
    "save_on_each_node": "save on every node (when output_dir is node-local, not shared storage)",
    "seed": "seed of weights' initialisation, data order and sampling",
    "resume_from_checkpoint": "a checkpoint folder, or 'latest' in output_dir, to resume from",
    "report_to": "experiment tracker ('none', 'tensorboard', 'wandb', ...) when installed",
    "device": "'cpu' forces CPU; default: CUDA when present",
    "num_threads": "torch CPU threads per process (1 avoids oversubscription on shared CPUs)",
}


PAPER_DATALOADER_WORKERS = 16  # Table 5


def available_cores() -> int:
    """CPU cores this process may run on (its affinity, which containers and schedulers set)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def workers_for_cores(cores: int, processes_per_node: int = 1) -> int:
    """The paper's 16 data-loader workers per process, but no more than the cores each training process
    has beside its own (16 workers on a 2-core machine only fight the training threads for the CPU):
    2 cores, one process -> 1 worker; 1 core -> 0 (load in the training process)."""
    per_process = max(1, cores // max(1, processes_per_node))
    return max(0, min(PAPER_DATALOADER_WORKERS, per_process - 1))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A JSON or YAML mapping; InputError naming the file otherwise."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read config: {exc}") from None
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml  # a transformers dependency, so present wherever training runs

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # noqa: BLE001 - JSON and YAML raise different error types
        raise InputError(path, f"not valid {'YAML' if path.suffix.lower() in ('.yaml', '.yml') else 'JSON'}: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(path, "config must be a mapping of setting -> value")
    return data


# -- command line --------------------------------------------------------------------------------

def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per field (``--learning-rate``, ``--lora`` / ``--no-lora``); defaults are None so
    that only flags given on the command line override the config file."""
    hints = get_type_hints(TrainConfig)
    parser.add_argument("--config", type=Path, help="a JSON or YAML file of settings (flags override it); "
                        "the file's keys are the flags' names with underscores")
    for f in fields(TrainConfig):
        hint = hints[f.name]
        flag = _flag(f.name)
        default = f.default if f.default_factory is MISSING else f.default_factory()  # type: ignore[misc]
        text = FIELD_HELP[f.name] + ("" if default in (None, "") else f" (default: {default})")
        text = text.replace("%", "%%")
        if hint is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif f.name == "lora_targets":
            parser.add_argument(flag, dest=f.name, nargs="+", default=None, metavar="MODULE", help=text)
        else:
            base = _base_type(hint)
            parser.add_argument(flag, dest=f.name, type=base, default=None, help=text,
                                metavar={int: "N", float: "X"}.get(base, "TEXT"))


def _base_type(hint) -> type:
    for t in (int, float, str):
        if hint is t or t in getattr(hint, "__args__", ()):
            return t
    return str


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    data: dict[str, Any] = read_config_file(args.config) if getattr(args, "config", None) else {}
    for f in fields(TrainConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            data[f.name] = value
    return TrainConfig.from_dict(data, getattr(args, "config", None))
