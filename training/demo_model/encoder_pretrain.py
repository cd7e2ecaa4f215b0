"""Stage 0 of the demo recipe: pretrain the tiny 3D encoder to see lesions.

The paper's TumorChain starts from M3D's pretrained 3D encoder; our tiny encoder starts from random
weights, and ~300 synthetic cases with organ-level normal/abnormal labels are too weak a signal to
learn lesion detection from scratch (measured: held-out classifier AUC stays near 0.5-0.65). So,
standing in for that pretraining, the encoder first learns a dense task on the cohort's own ground
truth: for every patch, does it contain lesion (tumor, metastasis or enlarged node) voxels? A
temporary linear head on the patch tokens is trained with a weighted binary cross-entropy and then
thrown away; only the encoder weights are kept (safetensors, loaded by TrainConfig.vision_weights).

Training targets come from lesions.nii.gz resampled onto the model grid by inference's preprocess
(nearest neighbour, the same grid as the CT), so they line up with the cached volumes.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from training.case_cache import CaseCache, patch_label_histogram


def lesion_targets(case_dir: Path, img_size, patch_size) -> np.ndarray:
    """(N,) float32 fraction of each patch's voxels inside any lesion instance."""
    import nibabel as nib

    from inference.ct_io import load_ct
    from inference.preprocess import preprocess
    from inference.segmentation.organ_masks import OrganMasks

    ct = load_ct(case_dir / "ct.nii.gz")
    lesions = (np.asarray(nib.load(str(case_dir / "lesions.nii.gz")).dataobj) > 0).astype(np.uint8)
    mi = preprocess(ct, OrganMasks(organs=lesions, affine=ct.affine, backend="lesions"), shape=tuple(img_size))
    hist = patch_label_histogram(mi.organs, tuple(patch_size))
    return (hist[:, 1] / float(np.prod(patch_size))).astype(np.float32)


def pretrain_encoder(encoder, cache: CaseCache, cases: Sequence[tuple[str, Path, Path]], out: Path, epochs: int,
                     lr: float, batch: int, seed: int, threshold: float = 0.02, pos_weight: float = 8.0,
                     log=print) -> dict:
    """cases: (case_id, cache file, case folder). Trains ``encoder`` in place, saves it to ``out``."""
    from safetensors.torch import save_file

    from inference.model.model_files import VISION_CONFIG_KEY

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    targets = [torch.from_numpy(lesion_targets(d, cache.geometry.img_size, cache.geometry.patch_size) >= threshold).float()
               for _, _, d in cases]
    head = torch.nn.Linear(encoder.config.hidden_size, 1)
    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    steps = epochs * ((len(cases) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    encoder.train()
    history = []
    t0 = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(cases), generator=g).tolist()
        total, n = 0.0, 0
        for s in range(0, len(order), batch):
            idx = order[s:s + batch]
            vol = torch.stack([cache.load(cases[i][1]).volume for i in idx])  # (B, 1, D, H, W)
            y = torch.stack([targets[i] for i in idx])  # (B, N)
            logits = head(encoder(vol)).squeeze(-1)
            loss = F.binary_cross_entropy_with_logits(logits, y, pos_weight=torch.tensor(pos_weight))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
            n += len(idx)
        history.append(round(total / n, 5))
        log(f"encoder pretraining epoch {epoch + 1}/{epochs}: loss {history[-1]:.4f} ({time.perf_counter() - t0:.0f} s)")
    encoder.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg = encoder.config
    meta = {VISION_CONFIG_KEY: json.dumps({k: getattr(cfg, k) for k in (
        "in_channels", "img_size", "patch_size", "hidden_size", "mlp_dim", "num_layers", "num_heads", "patch_embed",
        "qkv_bias", "cls_token", "layer_norm_eps")}), "format": "pt"}
    save_file({k: v.detach().contiguous() for k, v in encoder.state_dict().items()}, str(out), metadata=meta)
    positives = float(torch.stack(targets).mean())
    return {"epochs": epochs, "loss": history, "positive_patch_fraction": round(positives, 4),
            "seconds": round(time.perf_counter() - t0, 1)}
