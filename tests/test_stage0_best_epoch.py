"""Stage 0 of the demo build keeps the epoch with the best held-out AUC, not its last (issue 19: v0.5's
stage 0 peaked at 0.825 and shipped its last epoch's 0.762)."""
from __future__ import annotations

import torch

from training.demo_model.encoder_pretrain import BestEpoch


def _train_step(parts, value: float) -> None:
    with torch.no_grad():
        for m in parts:
            for p in m.parameters():
                p.fill_(value)


def test_best_epoch_restores_the_weights_of_the_best_heldout_epoch():
    parts = (torch.nn.Linear(3, 2), torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)))
    best = BestEpoch(parts)
    aucs = [0.70, 0.82, 0.82, 0.76]  # the tie at epoch 3 keeps epoch 2
    for epoch, auc in enumerate(aucs, start=1):
        _train_step(parts, float(epoch))
        parts[1][1].running_mean.fill_(10.0 * epoch)  # buffers come back too
        best.update(epoch, auc)
    assert all(float(p.detach().max()) == 4.0 for m in parts for p in m.parameters())  # the last epoch's
    best.restore()
    assert best.record() == {"kept_epoch": 2, "kept_auc": 0.82}
    for m in parts:
        for p in m.parameters():
            assert torch.equal(p, torch.full_like(p, 2.0))
    assert torch.equal(parts[1][1].running_mean, torch.full((2,), 20.0))


def test_best_epoch_snapshot_is_a_copy_and_no_score_restores_nothing():
    lin = torch.nn.Linear(2, 2)
    best = BestEpoch([lin])
    _train_step([lin], 1.0)
    best.update(1, 0.9)
    _train_step([lin], 5.0)  # in-place changes after the snapshot must not leak into it
    best.update(2, 0.5)
    best.restore()
    assert torch.equal(lin.weight, torch.ones_like(lin.weight))

    none = BestEpoch([lin])
    none.update(1, None)  # no held-out cases: nothing to choose by
    _train_step([lin], 7.0)
    none.restore()
    assert torch.equal(lin.weight, torch.full_like(lin.weight, 7.0))
    assert none.record() == {"kept_epoch": None, "kept_auc": None}
