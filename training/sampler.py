"""Case-grouped sampling: consecutive samples share a CT, so one encoder pass serves a whole batch.

A hospital data set asks many questions of one CT (TumorCoT-1.5M: ~12 per case). The sampler cuts
each case's samples (shuffled) into chunks of at most ``batch_size``, shuffles the chunks, and
yields their indices in order; the DataLoader's batches of ``batch_size`` then mostly hold one
case. The order depends only on (seed, epoch), so every rank draws the same sequence (accelerate
hands rank r every r-th batch) and a resumed run replays it exactly.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterator, Sequence

import torch


class CaseGroupedSampler(torch.utils.data.Sampler[int]):
    def __init__(self, case_keys: Sequence[str], batch_size: int, seed: int = 0):
        self.case_keys = list(case_keys)
        self.batch_size = max(int(batch_size), 1)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.case_keys)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + self.epoch)
        by_case: dict[str, list[int]] = defaultdict(list)
        for i, key in enumerate(self.case_keys):
            by_case[key].append(i)
        chunks: list[list[int]] = []
        for key in sorted(by_case):
            idx = by_case[key]
            order = torch.randperm(len(idx), generator=g).tolist()
            idx = [idx[o] for o in order]
            chunks += [idx[s:s + self.batch_size] for s in range(0, len(idx), self.batch_size)]
        # full chunks first in random order, then the short ones paired up, so few batches mix cases
        full = [c for c in chunks if len(c) == self.batch_size]
        short = [c for c in chunks if len(c) < self.batch_size]
        full = [full[i] for i in torch.randperm(len(full), generator=g).tolist()]
        short = [short[i] for i in torch.randperm(len(short), generator=g).tolist()]
        tail = [i for c in short for i in c]
        batches = full + [tail[s:s + self.batch_size] for s in range(0, len(tail), self.batch_size)]
        # the DataLoader cuts batches by position: only a batch of full size may move, the last stays last
        last = batches.pop() if batches and len(batches[-1]) < self.batch_size else None
        for b in torch.randperm(len(batches), generator=g).tolist():
            yield from batches[b]
        if last is not None:
            yield from last
