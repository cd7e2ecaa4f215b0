"""How well the auxiliary classifier tells abnormal organs from normal ones on held-out cases.

For every (case, organ) with a normal/abnormal label in the manifest and a mask on the model grid,
the organ's tokens are taken as inference takes them (preprocess, encode_case, organ_tokens) and
the classifier's P(abnormal) is compared with the label: accuracy at 0.5 and ROC AUC.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from training.manifest import Sample


def roc_auc(scores: Sequence[float], labels: Sequence[int]) -> float | None:
    """Mann-Whitney AUC with ties counted half; None when one class is absent. Rank-based
    (O(n log n)), so it also serves patch- and voxel-level evaluations with millions of scores."""
    from scipy.stats import rankdata

    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels) == 1
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        return None
    ranks = rankdata(s)  # ties get their average rank = counted half
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@torch.inference_mode()
def classifier_scores(model, samples: Sequence[Sample]) -> list[dict]:
    """One row per (case, organ): {case_id, organ, label, prob}."""
    from inference.ct_io import load_ct
    from inference.labels import merged_labels
    from inference.preprocess import preprocess
    from inference.segmentation.expert import make_expert

    table = merged_labels()
    wanted: dict[str, dict[str, int]] = {}
    first: dict[str, Sample] = {}
    for s in samples:
        wanted.setdefault(s.case_id, {}).update(s.organ_labels)
        first.setdefault(s.case_id, s)
    rows = []
    for case_id, labels in wanted.items():
        s = first[case_id]
        ct = load_ct(s.ct_file)
        masks = make_expert("precomputed", path=s.masks_file, parts_path=s.parts_file).segment(ct)
        mi = preprocess(ct, masks, shape=tuple(model.config.vision.img_size), scheme=model.config.preprocessing)
        enc = model.encode_case(mi.volume)
        for name, label in sorted(labels.items()):
            lab = table.by_name(name)
            mask = mi.mask(lab.id)
            if not bool(mask.any()):
                continue
            logits = model.organ_logits(model.organ_tokens(enc, mask, volume=mi, label=lab.id))
            prob = float(torch.softmax(logits.float(), dim=-1)[0, 1])
            rows.append({"case_id": case_id, "organ": name, "label": int(label), "prob": round(prob, 4)})
    return rows


def classifier_summary(rows: Sequence[dict]) -> dict:
    n = len(rows)
    correct = sum((r["prob"] >= 0.5) == bool(r["label"]) for r in rows)
    abnormal = sum(r["label"] for r in rows)
    return {"n": n, "abnormal": abnormal, "accuracy": correct / n if n else None,
            "auc": roc_auc([r["prob"] for r in rows], [r["label"] for r in rows]),
            "majority_baseline": max(abnormal, n - abnormal) / n if n else None}
