"""Stage 0 of the demo recipe: pretrain the tiny model's visual side to see lesions.

The paper's TumorChain starts from M3D's pretrained 3D encoder; our tiny encoder starts from random
weights, and ~300 synthetic cases with organ-level normal/abnormal labels are too weak a signal to
learn lesion detection from scratch (measured: held-out classifier AUC stays near 0.5-0.65). So,
standing in for that pretraining, the encoder, projector and classifier first learn a dense task on
the cohort's own ground truth: for every patch, does it contain lesion (tumor, metastasis or enlarged
node) voxels? (pretrain_visual). The build then saves the model folder and fine-tunes it.

Training targets come from lesions.nii.gz resampled onto the model grid by inference's preprocess
(nearest neighbour, the same grid as the CT), so they line up with the cached volumes.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from training.case_cache import CaseCache, patch_label_histogram


class BestEpoch:
    """Keeps a copy of ``parts``' weights at the epoch with the best held-out score, to put back at the
    end: stage 0's held-out AUC swings by up to 0.06 between its last epochs (v0.5: 0.825 at epoch 11,
    0.762 at epoch 12), so the last epoch is not the one to ship. Ties keep the earlier epoch; epochs
    without a score (no held-out cases) never count, and then nothing is restored."""

    def __init__(self, parts: Sequence[torch.nn.Module]):
        self.parts = tuple(parts)
        self.epoch: int | None = None  # 1-based
        self.score: float | None = None
        self._weights: list[dict[str, torch.Tensor]] | None = None

    def update(self, epoch: int, score: float | None) -> bool:
        if score is None or (self.score is not None and score <= self.score):
            return False
        self.epoch, self.score = epoch, score
        self._weights = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in self.parts]
        return True

    def restore(self) -> None:
        if self._weights is not None:
            for m, w in zip(self.parts, self._weights):
                m.load_state_dict(w)

    def record(self) -> dict:
        return {"kept_epoch": self.epoch, "kept_auc": None if self.score is None else round(self.score, 3)}


def lesion_targets(case_dir: Path, img_size, patch_size, store: Path | None = None) -> np.ndarray:
    """(N,) float32 fraction of each patch's voxels inside any lesion instance; kept as .npy in
    ``store`` (plain numeric arrays, read with allow_pickle=False)."""
    if store is not None:
        key = f"{case_dir.name}-{'x'.join(map(str, img_size))}-{'x'.join(map(str, patch_size))}.npy"
        if (store / key).is_file():
            return np.load(store / key, allow_pickle=False)
        out = lesion_targets(case_dir, img_size, patch_size)
        store.mkdir(parents=True, exist_ok=True)
        np.save(store / key, out, allow_pickle=False)
        return out
    import nibabel as nib

    from inference.ct_io import load_ct
    from inference.preprocess import preprocess
    from inference.segmentation.organ_masks import OrganMasks

    ct = load_ct(case_dir / "ct.nii.gz")
    lesions = (np.asarray(nib.load(str(case_dir / "lesions.nii.gz")).dataobj) > 0).astype(np.uint8)
    mi = preprocess(ct, OrganMasks(organs=lesions, affine=ct.affine, backend="lesions"), shape=tuple(img_size))
    hist = patch_label_histogram(mi.organs, tuple(patch_size))
    return (hist[:, 1] / float(np.prod(patch_size))).astype(np.float32)


def pretrain_visual(model, cache: CaseCache, cases: Sequence[tuple[str, Path, Path]], epochs: int, lr: float,
                    batch: int, seed: int, threshold: float = 0.1, pos_weight: float = 16.0,
                    heldout: Sequence[tuple[str, Path, Path]] = (), flips: bool = False,
                    targets_dir: Path | None = None, log=print) -> dict:
    """Train the encoder, the projector and the classifier's linear layer of ``model`` (a
    TumorChainModel) in place on patch-level lesion targets; cases: (case_id, cache file, case folder).

    Each patch token goes through the projector and the classifier's Linear exactly as an organ token
    does, and is classified lesion / no lesion. Because the classifier is linear on the mean of the
    organ's projected tokens, an organ's logit is then the mean of its tokens' lesion logits: the
    organ classifier starts out meaning "this organ's tokens contain lesion", and the organ tokens the
    LLM reads carry that direction. ``heldout`` cases give the patch-level ROC AUC after each epoch."""
    from training.classifier_eval import roc_auc

    def target(d: Path) -> torch.Tensor:
        frac = lesion_targets(d, cache.geometry.img_size, cache.geometry.patch_size, targets_dir)
        return torch.from_numpy(frac >= threshold).long()

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    targets = [target(d) for _, _, d in cases]
    held_targets = [target(d) for _, _, d in heldout]
    parts = (model.vision_encoder, model.projector, model.classifier)
    params = [p for m in parts for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    steps = epochs * ((len(cases) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    weight = torch.tensor([1.0, pos_weight])
    for m in parts:
        m.train()
    history: list[float] = []
    aucs: list[float | None] = []
    best = BestEpoch(parts)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(cases), generator=g).tolist()
        total, n = 0.0, 0
        for s in range(0, len(order), batch):
            idx = order[s:s + batch]
            vol = torch.stack([cache.load(cases[i][1]).volume for i in idx])  # (B, 1, D, H, W)
            y = torch.stack([targets[i] for i in idx])  # (B, N)
            if flips:
                vol, y = _flip(vol, y, model.config.vision.grid, g)
            logits = patch_logits(model, vol)  # (B, N, 2)
            loss = F.cross_entropy(logits.reshape(-1, 2), y.reshape(-1), weight=weight)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            n += len(idx)
        history.append(round(total / n, 5))
        auc = _heldout_auc(model, cache, heldout, held_targets, roc_auc) if heldout else None
        aucs.append(auc)
        best.update(epoch + 1, auc)
        log(f"visual pretraining epoch {epoch + 1}/{epochs}: loss {history[-1]:.4f}"
            + (f", held-out patch AUC {auc:.3f}" if auc is not None else "") + f" ({time.perf_counter() - t0:.0f} s)")
    best.restore()  # the best held-out epoch's weights, not the last epoch's
    for m in parts:
        m.eval()
    positives = float(torch.stack(targets).float().mean())
    return {"epochs": epochs, "loss": history, "heldout_patch_auc": aucs, "positive_patch_fraction": round(positives, 4),
            "threshold": threshold, "seconds": round(time.perf_counter() - t0, 1)} | best.record()


def patch_logits(model, vol: torch.Tensor) -> torch.Tensor:
    """(B, 1, D, H, W) -> (B, N, 2): every patch token through the projector and the classifier's Linear."""
    return model.classifier.fc(model.projector(model.vision_encoder(vol)))


def _flip(vol: torch.Tensor, y: torch.Tensor, grid, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flips along depth and width, applied to the volume and the patch targets alike (the
    patch grid tiles the volume exactly, so a flip maps patches onto patches). Lesions then must be
    recognised by their look, not by where lesions usually are."""
    gd, gh, gw = grid
    y = y.reshape(y.shape[0], gd, gh, gw)
    for vdim, ydim in ((2, 1), (4, 3)):
        if bool(torch.rand((), generator=g) < 0.5):
            vol, y = vol.flip(vdim), y.flip(ydim)
    return vol, y.reshape(y.shape[0], -1)


@torch.no_grad()
def _heldout_auc(model, cache, heldout, targets, roc_auc) -> float | None:
    scores, labels = [], []
    for (_, path, _), y in zip(heldout, targets):
        logits = patch_logits(model, cache.load(path).volume[None])[0]
        scores += (logits[:, 1] - logits[:, 0]).tolist()
        labels += y.tolist()
    return roc_auc(scores, labels)


def pretrain_masked_organs(model, cache: CaseCache, cases: Sequence[tuple[str, Path, dict]], epochs: int, lr: float,
                           batch: int, seed: int, heldout: Sequence[tuple[str, Path, dict]] = (), flips: bool = True,
                           pos_weight: float = 3.0, substructures: bool = False, log=print) -> dict:
    """Stage 0 for a masked-Gamma model (TumorChainConfig.gamma_mode "masked"): the conv stem,
    organ_pool, projector and classifier learn normal / abnormal per organ on exactly the organ
    tokens the LLM will read (stem features pooled over the organ's own voxels; the ViT is not needed
    for them). cases: (case_id, cache file, {organ: 0/1}). Random depth/width flips move the volume
    and the cached voxel weights together. ``heldout`` cases give the organ-level ROC AUC per epoch.
    Organ-level labels only unless ``substructures`` (the main training adds the sub-regions).
    Measured on the demo cohort (288 training cases, 36 held-out): organ AUC 0.69-0.72 for four
    epochs, then 0.75, 0.75, 0.80, 0.86 after epochs 5-8 (the rise the diagnostic showed), 0.81-0.85
    after 9-12; the same without the organ-wide statistics and identity plateaued at 0.72."""
    from inference.labels import merged_labels
    from training.classifier_eval import roc_auc

    table = merged_labels()
    cfg = model.config
    if cfg.gamma_mode != "masked":
        raise ValueError(f"pretrain_masked_organs needs gamma_mode 'masked', the model has {cfg.gamma_mode!r}")
    stem_grid = tuple(i // s for i, s in zip(cfg.vision.img_size, cfg.vision.stem_stride))
    ll = cfg.n_organ_tokens + 1  # pooled rows per organ: its tokens and the whole organ

    def items(case) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, int]]:
        tensors = cache.load(case[1])
        out = []
        for organ, y in sorted(case[2].items()):
            lab = table.by_name(organ)
            if lab.is_substructure and not substructures:
                continue  # organ-level labels only, as the diagnostic this follows (main training adds them)
            lid = lab.id
            if tensors.masked is None or lid not in tensors.masked:
                continue
            rows, cols, vals = (torch.from_numpy(a) for a in tensors.masked[lid])
            out.append((rows.long(), cols.long(), vals, int(y), lid))
        return out

    def organ_logits(vol: torch.Tensor, itemsets, perm: torch.Tensor | None = None):
        feats = model.vision_encoder.stem(vol)  # (B, C, d, h, w)
        v = feats[0, 0].numel()
        rows, cols, vals, ys, labels = [], [], [], [], []
        for b, its in enumerate(itemsets):
            for rws, cls, vls, y, lid in its:
                cls = perm[cls] if perm is not None else cls
                rows.append(rws + len(ys) * ll)
                cols.append(cls + b * v)
                vals.append(vls)
                ys.append(y)
                labels.append(lid)
        organ_in = model.organ_inputs(None, feats, None, None, torch.tensor(labels), torch.cat(rows),
                                      torch.cat(cols), torch.cat(vals))
        return model.classifier(model.projector(organ_in)), torch.tensor(ys)

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    train_items = [items(c) for c in cases]
    held_items = [items(c) for c in heldout]
    parts = (model.vision_encoder, model.organ_pool, model.projector, model.classifier)
    params = [p for m in parts for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    weight = torch.tensor([1.0, pos_weight])
    index = torch.arange(int(np.prod(stem_grid))).reshape(stem_grid)
    for m in parts:
        m.train()
    history, aucs = [], []
    best = BestEpoch(parts)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        order = [i for i in torch.randperm(len(cases), generator=g).tolist() if train_items[i]]
        total, n = 0.0, 0
        for s in range(0, len(order), batch):
            idx = order[s:s + batch]
            vol = torch.stack([cache.load(cases[i][1]).volume for i in idx])  # (B, 1, D, H, W)
            perm = None
            if flips:
                dims = [d for d in (0, 2) if bool(torch.rand((), generator=g) < 0.5)]  # depth, width
                if dims:
                    vol = vol.flip([d + 2 for d in dims])
                    # flipped voxel j holds what voxel perm[j] held: a weight on voxel c moves to perm^-1[c]
                    perm = torch.argsort(index.flip(dims).reshape(-1))
            logits, y = organ_logits(vol, [train_items[i] for i in idx], perm)
            loss = F.cross_entropy(logits, y, weight=weight)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            total += float(loss.detach()) * len(idx)
            n += len(idx)
        history.append(round(total / max(n, 1), 5))
        auc = None
        if heldout:
            for m in parts:
                m.eval()
            scores, labels = [], []
            with torch.no_grad():
                for case, its in zip(heldout, held_items):
                    if its:
                        logits, y = organ_logits(cache.load(case[1]).volume[None], [its])
                        scores += (logits[:, 1] - logits[:, 0]).tolist()
                        labels += y.tolist()
            for m in parts:
                m.train()
            auc = roc_auc(scores, labels)
        aucs.append(None if auc is None else round(auc, 3))
        best.update(epoch + 1, auc)
        log(f"masked organ pretraining epoch {epoch + 1}/{epochs}: loss {history[-1]:.4f}"
            + (f", held-out organ AUC {auc:.3f}" if auc is not None else "") + f" ({time.perf_counter() - t0:.0f} s)")
    best.restore()  # the best held-out epoch's weights, not the last epoch's
    if best.epoch is not None:
        log(f"masked organ pretraining keeps epoch {best.epoch} (held-out organ AUC {best.score:.3f})")
    for m in parts:
        m.eval()
    return {"epochs": epochs, "loss": history, "heldout_organ_auc": aucs,
            "seconds": round(time.perf_counter() - t0, 1)} | best.record()
