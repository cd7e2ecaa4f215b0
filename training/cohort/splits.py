"""Patient-level (here: case-level) train / val / test split, as the paper's protocol: every
sample of a case lands in the split of its case, so no case is in two splits."""
from __future__ import annotations

import numpy as np

SPLITS = ("train", "val", "test")


def split_cases(case_ids: list[str], seed: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
                ) -> dict[str, list[str]]:
    """Deterministic split of ``case_ids`` (order does not matter). With three or more cases
    val and test get at least one case each; train keeps the rest."""
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    ids = sorted(set(case_ids))
    order = np.random.default_rng([int(seed), 0x5B117]).permutation(len(ids))
    ids = [ids[i] for i in order]
    n = len(ids)
    n_val = int(round(fractions[1] * n))
    n_test = int(round(fractions[2] * n))
    if n >= 3:
        n_val = max(n_val, 1 if fractions[1] > 0 else 0)
        n_test = max(n_test, 1 if fractions[2] > 0 else 0)
    n_train = max(n - n_val - n_test, 0)
    out = {"train": ids[:n_train], "val": ids[n_train:n_train + n_val], "test": ids[n_train + n_val:]}
    return {k: sorted(v) for k, v in out.items()}
