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
                     heldout: Sequence[tuple[str, Path, Path]] = (), log=print) -> dict:
    """cases: (case_id, cache file, case folder). Trains ``encoder`` in place, saves it to ``out``;
    ``heldout`` cases give the patch-level ROC AUC of the lesion head after each epoch."""
    from training.classifier_eval import roc_auc

    from safetensors.torch import save_file

    from inference.model.model_files import VISION_CONFIG_KEY

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    def target(d: Path) -> torch.Tensor:
        return torch.from_numpy(lesion_targets(d, cache.geometry.img_size, cache.geometry.patch_size) >= threshold).float()

    targets = [target(d) for _, _, d in cases]
    held_targets = [target(d) for _, _, d in heldout]
    head = torch.nn.Linear(encoder.config.hidden_size, 1)
    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    steps = epochs * ((len(cases) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    encoder.train()
    history: list[float] = []
    aucs: list[float | None] = []
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
            total += float(loss.detach()) * len(idx)
            n += len(idx)
        history.append(round(total / n, 5))
        auc = _heldout_auc(encoder, head, cache, heldout, held_targets, roc_auc) if heldout else None
        aucs.append(auc)
        log(f"encoder pretraining epoch {epoch + 1}/{epochs}: loss {history[-1]:.4f}"
            + (f", held-out patch AUC {auc:.3f}" if auc is not None else "") + f" ({time.perf_counter() - t0:.0f} s)")
    encoder.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg = encoder.config
    meta = {VISION_CONFIG_KEY: json.dumps({k: getattr(cfg, k) for k in (
        "in_channels", "img_size", "patch_size", "hidden_size", "mlp_dim", "num_layers", "num_heads", "patch_embed",
        "qkv_bias", "cls_token", "layer_norm_eps")}), "format": "pt"}
    save_file({k: v.detach().contiguous() for k, v in encoder.state_dict().items()}, str(out), metadata=meta)
    positives = float(torch.stack(targets).mean())
    return {"epochs": epochs, "loss": history, "heldout_patch_auc": aucs, "positive_patch_fraction": round(positives, 4),
            "seconds": round(time.perf_counter() - t0, 1)}


@torch.no_grad()
def _heldout_auc(encoder, head, cache, heldout, targets, roc_auc) -> float | None:
    encoder.eval()
    scores, labels = [], []
    for (_, path, _), y in zip(heldout, targets):
        scores += head(encoder(cache.load(path).volume[None])).squeeze(-1)[0].tolist()
        labels += y.int().tolist()
    encoder.train()
    return roc_auc(scores, labels)


@torch.no_grad()
def init_patch_embedding_as_local_means(encoder) -> None:
    """Start the (perceptron) patch embedding as local averages: output channel k = mean of the k-th
    sub-block of the patch (the blocks tile the patch), so the first layer already measures where a
    patch is brighter or darker; training refines it. A random 4096 -> 64 projection buries a lesion's
    contrast in noise and needs far more data than the demo cohort has."""
    cfg = encoder.config
    linear = encoder.patch_embedding.patch_embeddings[1]
    pd, ph, pw = cfg.patch_size
    k = cfg.hidden_size
    # split the patch into k blocks: as many along depth as fit, the rest in-plane (square-ish)
    bd = min(pd, k)
    rest = k // bd
    by = 1
    while by * by < rest:
        by *= 2
    bx = rest // by
    if bd * by * bx != k or pd % bd or ph % by or pw % bx:
        raise ValueError(f"cannot tile a {cfg.patch_size} patch into {k} blocks")
    z, y, x = torch.meshgrid(torch.arange(pd), torch.arange(ph), torch.arange(pw), indexing="ij")
    block = ((z // (pd // bd)) * by + (y // (ph // by))) * bx + (x // (pw // bx))  # (pd, ph, pw)
    w = torch.zeros(k, pd * ph * pw * cfg.in_channels)
    flat = block.reshape(-1)
    for c in range(cfg.in_channels):
        w[flat, torch.arange(flat.numel()) * cfg.in_channels + c] = 1.0
    w /= w.sum(dim=1, keepdim=True)
    linear.weight.copy_(w * 4.0)  # window units (0..1) -> a few units, the scale LayerNorm expects
    linear.bias.zero_()
