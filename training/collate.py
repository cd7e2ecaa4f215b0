"""Batching examples: padded token tensors, one volume per distinct case, and index tensors that
say where every visual run goes.

A batch (B samples, C distinct cases, M distinct (case, organ mask) pairs, S visual runs, Q
classifier targets):

    input_ids       int64 (B, T)   right-padded with the pad id
    labels          int64 (B, T)   -100 on padding and non-answer tokens
    attention_mask  int64 (B, T)
    volumes         float (C, 1, D, H, W)   each case once: the encoder runs once per case; in crop
                    Gamma also each (case, organ)'s crop box (the organ's tokens come from its encoding)
    case_key        int64 (C,)     a stable id of each case (its cache file, which is keyed by content):
                    the frozen-encoder cache's key, the same in every dataloader worker and rank
    sample_case     int64 (B,)     case row of each sample
    organ_weights   float (M, Ll, N)        Gamma's patch weights of each (case, organ)
    organ_case      int64 (M,)     volume row whose encoding the organ's tokens come from
    organ_label     int64 (M,)     label id of each (case, organ): masked Gamma adds the organ's identity
    organ_voxel_rows/cols/vals  masked Gamma only (else empty): sparse weights of row m*(Ll+1) + t over the
                    stacked stem voxels (case row * V + voxel) of the batch's cases
    slot_sample     int64 (S,)     sample of each visual run
    slot_start      int64 (S,)     its first position
    slot_kind       int64 (S,)     0 global (Lg tokens of the sample's case) / 1 organ (Ll tokens)
    slot_row        int64 (S,)     case row (global) or organ row (organ)
    cls_row         int64 (Q,)     organ row of each classifier target
    cls_target      int64 (Q,)     0 normal / 1 abnormal
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from training.dataset import KIND_GLOBAL
from inference.vocabulary import IGNORE_INDEX



class Collator:
    def __init__(self, pad_id: int):
        self.pad_id = int(pad_id)

    def __call__(self, items: Sequence[dict]) -> dict[str, torch.Tensor]:
        examples = [it["example"] for it in items]
        t_max = max(len(ex.input_ids) for ex in examples)
        b = len(examples)
        input_ids = torch.full((b, t_max), self.pad_id, dtype=torch.long)
        labels = torch.full((b, t_max), IGNORE_INDEX, dtype=torch.long)
        attention = torch.zeros((b, t_max), dtype=torch.long)
        case_rows: dict[str, int] = {}
        volumes: list[torch.Tensor] = []
        case_keys: list[int] = []
        case_names: dict[int, str] = {}
        sample_case: list[int] = []
        organ_rows: dict[tuple[int, int], int] = {}
        organ_weights: list[torch.Tensor] = []
        organ_case: list[int] = []
        organ_label: list[int] = []
        voxel_rows: list[np.ndarray] = []
        voxel_cols: list[np.ndarray] = []
        voxel_vals: list[np.ndarray] = []
        slot_sample, slot_start, slot_kind, slot_row = [], [], [], []
        cls_row, cls_target = [], []

        def organ_row(case_row: int, case, label: int) -> int:
            key = (case_row, label)
            if key not in organ_rows:
                organ_rows[key] = len(organ_weights)
                if case.masked is not None:
                    rows, cols, vals = case.masked[label]
                    voxel_rows.append(rows.astype(np.int64) + len(organ_weights) * (case.n_organ_tokens + 1))
                    voxel_cols.append(cols.astype(np.int64) + case_row * case.stem_voxels)
                    voxel_vals.append(vals)
                organ_weights.append(case.organ_weights(label))
                if case.crops is not None:  # crop Gamma: the organ's box is encoded as a volume of its own
                    organ_case.append(len(volumes))
                    volumes.append(case.crops[label])
                    case_keys.append(_stable_key(f"{case_names[case_row]}#crop{int(label)}"))
                else:
                    organ_case.append(case_row)
                organ_label.append(int(label))
            return organ_rows[key]

        for i, (it, ex) in enumerate(zip(items, examples)):
            n = len(ex.input_ids)
            input_ids[i, :n] = ex.input_ids
            labels[i, :n] = ex.labels
            attention[i, :n] = 1
            key = str(ex.case_path)
            if key not in case_rows:
                case_rows[key] = len(volumes)
                volumes.append(it["case"].volume)
                case_keys.append(_stable_key(Path(key).name))
                case_names[len(volumes) - 1] = Path(key).name
            c = case_rows[key]
            sample_case.append(c)
            for start, kind, label in ex.slots.tolist():
                slot_sample.append(i)
                slot_start.append(start)
                slot_kind.append(kind)
                slot_row.append(c if kind == KIND_GLOBAL else organ_row(c, it["case"], label))
            for label, target in ex.cls.tolist():
                cls_row.append(organ_row(c, it["case"], label))
                cls_target.append(target)
        n_organ, n_patch = items[0]["case"].n_organ_tokens, items[0]["case"].n_patches
        return {
            "input_ids": input_ids,
            "labels": labels,
            "attention_mask": attention,
            "volumes": torch.stack(volumes),  # (C, 1, D, H, W)
            "case_key": torch.tensor(case_keys, dtype=torch.long),
            "sample_case": torch.tensor(sample_case, dtype=torch.long),
            "organ_weights": torch.stack(organ_weights) if organ_weights else torch.zeros(0, n_organ, n_patch),
            "organ_case": torch.tensor(organ_case, dtype=torch.long),
            "organ_label": torch.tensor(organ_label, dtype=torch.long),
            "organ_voxel_rows": torch.from_numpy(np.concatenate(voxel_rows)) if voxel_rows else torch.zeros(0, dtype=torch.long),
            "organ_voxel_cols": torch.from_numpy(np.concatenate(voxel_cols)) if voxel_cols else torch.zeros(0, dtype=torch.long),
            "organ_voxel_vals": torch.from_numpy(np.concatenate(voxel_vals)) if voxel_vals else torch.zeros(0),
            "slot_sample": torch.tensor(slot_sample, dtype=torch.long),
            "slot_start": torch.tensor(slot_start, dtype=torch.long),
            "slot_kind": torch.tensor(slot_kind, dtype=torch.long),
            "slot_row": torch.tensor(slot_row, dtype=torch.long),
            "cls_row": torch.tensor(cls_row, dtype=torch.long),
            "cls_target": torch.tensor(cls_target, dtype=torch.long),
        }


def _stable_key(name: str) -> int:
    """The same id for the same cache file in every dataloader worker and rank."""
    return int(hashlib.sha1(name.encode()).hexdigest()[:15], 16)
