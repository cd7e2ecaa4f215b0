"""From a TrainConfig and the model to a ready ManifestDataset: validate the manifest, build the
case cache (split over the node's local ranks, then a barrier), plan and tokenise the samples."""
from __future__ import annotations

import time
from typing import Callable

from inference.iir.prompt_style import prompt_style
from training.case_cache import CaseCache, Geometry
from training.config import TrainConfig
from training.dataset import ManifestDataset, end_of_answer_id, prepare_cases
from training.manifest import load_manifest
from training.runtime import barrier, dist_info


def make_cache(cfg: TrainConfig, model) -> CaseCache:
    return CaseCache(cfg.cache_path, Geometry.from_model_config(model.config), cfg.segmentation)


def load_samples(cfg: TrainConfig, manifest: str | None = None):
    """The validated samples a run trains on (checked before any model is built)."""
    samples = load_manifest(manifest or cfg.train_manifest, check_files=True)
    return samples[:cfg.max_samples] if cfg.max_samples else samples


def build_datasets(cfg: TrainConfig, model, manifest: str | None = None,
                   log_fn: Callable[[str], None] | None = print, samples=None) -> ManifestDataset:
    samples = samples if samples is not None else load_samples(cfg, manifest)
    cache = make_cache(cfg, model)
    _, _, local_rank, local_world = dist_info()
    t0 = time.perf_counter()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if log_fn is not None and (time.perf_counter() - last[0] > 30 or done == total):
            last[0] = time.perf_counter()
            log_fn(f"case cache: {done}/{total} cases checked")

    # every local rank builds its share of the missing entries; the barrier waits for all of them
    paths = prepare_cases(samples, cache, shard=(local_rank, local_world), progress=progress)
    barrier()
    cfgm = model.config
    ds = ManifestDataset(samples, paths, cache, model.tokenizer, cfgm.n_global_tokens, cfgm.n_organ_tokens,
                         end_of_answer_id(model), (cfgm.ct_token, cfgm.organ_token), cls_organs=cfg.cls_organs,
                         style=prompt_style(cfgm, model.tokenizer))
    if log_fn is not None:
        lengths = ds.lengths()
        log_fn(f"{len(ds)} training sequences from {len(paths)} cases in {time.perf_counter() - t0:.1f} s; "
               f"tokens per sequence: mean {sum(lengths) / len(lengths):.0f}, max {max(lengths)}")
    return ds
