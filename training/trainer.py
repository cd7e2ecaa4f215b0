"""TumorChainTrainer (a Hugging Face Trainer) and run_training(), the whole of one training run.

What the Trainer subclass adds: the joint loss of eq. 8 with the LM and classification parts
logged separately (``lm_loss``, ``cls_loss``, ``cls_acc``, averaged over the logging window and
over ranks), case-grouped batches, and checkpoints in safetensors that keep tied weights.
Everything else (AdamW, cosine schedule with warmup, gradient accumulation, bf16, DeepSpeed ZeRO,
DDP, resuming with RNG and data order) is the stock Trainer's.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import torch

from training.checkpoint_io import load_state_dict, save_state_dict
from training.config import CONFIG_FILE, TrainConfig

log = logging.getLogger("tumorchain.training")
WEIGHTS_FILE = "model.safetensors"
LOG_FILE = "train_log.jsonl"


def _trainer_class():
    from transformers import Trainer, TrainerCallback

    class JsonlLogger(TrainerCallback):
        """Every log line also goes to <output_dir>/train_log.jsonl (rank 0)."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                with open(Path(args.output_dir) / LOG_FILE, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"step": state.global_step, **logs}) + "\n")

    class TumorChainTrainer(Trainer):
        loss_is_scaled_for_ga = False  # compute_loss returns a per-micro-batch mean

        def __init__(self, *args, group_by_case: bool = True, case_keys=None, train_config=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.train_config = train_config
            self.group_by_case = group_by_case
            self.case_keys = case_keys
            self._sums = torch.zeros(5, dtype=torch.float64)  # lm, cls, correct, count, micro-batches
            self.add_callback(JsonlLogger())

        def _get_train_sampler(self, train_dataset=None):
            if self.group_by_case and self.case_keys is not None:
                from training.sampler import CaseGroupedSampler

                return CaseGroupedSampler(self.case_keys, self.args.per_device_train_batch_size, self.args.seed)
            return super()._get_train_sampler(train_dataset)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            outputs = model(**inputs)
            parts = self.accelerator.unwrap_model(model).last_parts
            if parts is not None and model.training:
                self._sums += torch.tensor([float(parts.lm_loss), float(parts.cls_loss), float(parts.cls_correct),
                                            float(parts.cls_count), 1.0], dtype=torch.float64)
            return (outputs["loss"], outputs) if return_outputs else outputs["loss"]

        def log(self, logs, start_time=None):
            if "loss" in logs and self._sums[4] > 0:
                sums = self._sums.to(self.args.device)
                if torch.distributed.is_available() and torch.distributed.is_initialized():
                    torch.distributed.all_reduce(sums)
                s = sums.cpu()
                logs["lm_loss"] = round(float(s[0] / s[4]), 6)
                logs["cls_loss"] = round(float(s[1] / s[4]), 6)
                if s[3] > 0:
                    logs["cls_acc"] = round(float(s[2] / s[3]), 4)
                self._sums.zero_()
            super().log(logs, start_time)

        def _save(self, output_dir=None, state_dict=None):
            output_dir = Path(output_dir or self.args.output_dir)
            if not self.args.should_save:
                return
            output_dir.mkdir(parents=True, exist_ok=True)
            if state_dict is None:
                state_dict = self.accelerator.unwrap_model(self.model).state_dict()
            if state_dict:  # ZeRO-3 without gathering saves only its shards (export consolidates them)
                save_state_dict(state_dict, output_dir / WEIGHTS_FILE)
            if self.processing_class is not None:
                self.processing_class.save_pretrained(str(output_dir))
            if self.train_config is not None:  # export rebuilds the model from it
                self.train_config.save(output_dir / CONFIG_FILE)

        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            model = model or self.model
            state = load_state_dict(Path(resume_from_checkpoint) / WEIGHTS_FILE)
            result = self.accelerator.unwrap_model(model).load_state_dict(state, strict=False)
            if result.missing_keys or result.unexpected_keys:
                raise RuntimeError(f"{resume_from_checkpoint}: checkpoint does not fit this model (missing "
                                   f"{result.missing_keys[:4]}, unexpected {result.unexpected_keys[:4]})")

    return TumorChainTrainer


def uses_bf16(cfg: TrainConfig, cpu: bool) -> bool:
    """bf16 as asked for, except on the CPU (float32 there)."""
    return bool(cfg.bf16) and not cpu


def training_arguments(cfg: TrainConfig, cpu: bool):
    from transformers import TrainingArguments

    from training.runtime import deepspeed_config

    bf16 = uses_bf16(cfg, cpu)
    if cfg.bf16 and cpu:
        log.info("bf16 asked for, but this run is on the CPU: training in float32")
    return TrainingArguments(
        output_dir=cfg.output_dir,
        per_device_train_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        num_train_epochs=cfg.num_epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        weight_decay=cfg.weight_decay,
        adam_beta1=cfg.adam_beta1,
        adam_beta2=cfg.adam_beta2,
        max_grad_norm=cfg.max_grad_norm,
        optim=cfg.optimizer,
        bf16=bf16,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        save_on_each_node=cfg.save_on_each_node,
        seed=cfg.seed,
        data_seed=cfg.seed,
        dataloader_num_workers=cfg.workers,
        dataloader_persistent_workers=cfg.workers > 0,
        remove_unused_columns=False,
        report_to=[] if cfg.report_to in ("none", "", None) else [cfg.report_to],
        deepspeed=deepspeed_config(cfg.deepspeed, cpu) if cfg.deepspeed else None,
        use_cpu=cpu,
        ddp_backend="gloo" if cpu and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
        ddp_timeout=cfg.ddp_timeout_s,
        ddp_find_unused_parameters=False,
        disable_tqdm=True,
    )


def latest_checkpoint(output_dir: str | Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    out = Path(output_dir)
    return get_last_checkpoint(str(out)) if out.is_dir() else None


def run_training(cfg: TrainConfig, log_fn=print, model=None) -> dict:
    """Train as ``cfg`` says; returns a summary (steps, losses, samples/s, output folder).
    ``model``: an already built TumorChainModel (benchmarks); default: built from cfg."""
    from training.runtime import setup_environment

    cpu = setup_environment(cfg.device)
    if cfg.deepspeed and cpu:
        from training.runtime import quiet_deepspeed_on_cpu

        quiet_deepspeed_on_cpu()
    from transformers import set_seed

    from training.build_model import training_model
    from training.collate import Collator
    from training.data_setup import build_datasets, load_samples
    from training.joint_model import TumorChainForTraining
    from training.runtime import dist_info

    if cfg.num_threads:
        torch.set_num_threads(int(cfg.num_threads))
    samples = load_samples(cfg)  # a bad manifest fails before anything heavy
    set_seed(cfg.seed)
    rank, world, _, _ = dist_info()
    dtype = torch.bfloat16 if (cfg.deepspeed and uses_bf16(cfg, cpu)) else torch.float32
    # the model is built before TrainingArguments: with ZeRO-3 configured, transformers would otherwise
    # partition the LLM while it loads (zero.Init) and our wrapper would add tokens to a sharded model;
    # DeepSpeed partitions the whole TumorChainModel when the engine starts instead
    if model is None:
        model, trainable = training_model(cfg, dtype)
    else:
        from training.build_model import prepare_for_training

        trainable = prepare_for_training(model, cfg)
    args = training_arguments(cfg, cpu)  # initialises torch.distributed under a launcher
    if rank == 0:
        log_fn(f"trainable parameters: {trainable}")
        log_fn(f"data-loader workers: {cfg.workers}" + (" (dataloader_workers unset: min(16, cores per process - 1))"
                                                        if cfg.dataloader_workers is None else ""))
        Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
        cfg.save(Path(cfg.output_dir) / CONFIG_FILE)
    train_ds = build_datasets(cfg, model, log_fn=log_fn if rank == 0 else None, samples=samples)
    wrapper = TumorChainForTraining(model, cfg.cls_loss_weight,
                                    cfg.frozen_encoder_cache_mb if cfg.freeze_encoder else 0)
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else model.tokenizer.eos_token_id
    trainer_cls = _trainer_class()
    trainer = trainer_cls(model=wrapper, args=args, train_dataset=train_ds, data_collator=Collator(pad),
                          processing_class=model.tokenizer, group_by_case=cfg.group_by_case,
                          case_keys=train_ds.case_ids(), train_config=cfg)
    resume = cfg.resume_from_checkpoint
    if resume == "latest":
        resume = latest_checkpoint(cfg.output_dir)
    log_file = Path(cfg.output_dir) / LOG_FILE
    if rank == 0 and not resume and log_file.exists():
        log_file.unlink()  # a fresh run starts a fresh log; a resumed one appends
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - t0
    trainer.save_model(str(Path(cfg.output_dir) / "final"))
    trainer.save_state()
    samples = result.metrics.get("train_samples", None)
    summary = {
        "output_dir": cfg.output_dir, "global_step": trainer.state.global_step, "world_size": world,
        "train_loss": result.training_loss, "seconds": round(seconds, 2),
        "train_samples_per_second": result.metrics.get("train_samples_per_second"),
        "examples": len(train_ds), "dropped": dict(train_ds.dropped), "samples": samples,
        "log": [h for h in trainer.state.log_history if "loss" in h],
        "resumed_from": resume,
    }
    if rank == 0:
        (Path(cfg.output_dir) / "train_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
