"""Manifest -> training examples: the teacher-forced IIR sequence of each sample and its case.

An example (``ManifestDataset[i]``) holds

    input_ids   int64 [T]   one id per token, placeholder ids on the visual positions
    labels      int64 [T]   the ids on answer tokens (each round's answer and its end-of-answer id),
                            -100 elsewhere; HF causal LMs shift them inside the loss
    slots       int64 [S, 3]  (start, kind 0 = global / 1 = organ, mask label id or -1) per visual run
    cls         int64 [Q, 2]  (mask label id, 0 normal / 1 abnormal) organs for the classifier loss
    case        the case cache file (collate loads and de-duplicates volumes)

Sequences come from chain_plan.plan_chain (inference's IIR loop replayed), tokenised by
inference.iir.interleaved_input.SequenceBuilder: the ids are the ones inference would feed.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from inference.iir.interleaved_input import SequenceBuilder
from inference.labels import merged_labels
from training.case_cache import CaseCache
from training.chain_plan import plan_chain
from training.manifest import Sample

log = logging.getLogger("tumorchain.training")
KIND_GLOBAL, KIND_ORGAN = 0, 1


@dataclass
class Example:
    sample_id: str
    case_path: Path
    input_ids: torch.Tensor
    labels: torch.Tensor
    slots: torch.Tensor
    cls: torch.Tensor


def end_of_answer_id(model) -> int:
    """The id that closes every answer, chosen as ModelRoundGenerator.for_model does at inference."""
    from inference.iir.decoding import default_end_of_answer_id

    eoa = getattr(model.config, "end_of_answer_token_id", None)
    if eoa is None:
        eoa = default_end_of_answer_id(model.tokenizer, model.llm)
    if eoa is None:
        raise ValueError("the tokenizer has no eos token to end answers with")
    return int(eoa)


def case_files(sample: Sample) -> tuple[Path, Path | None, Path | None]:
    masks = sample.masks_file if sample.masks else None
    return sample.ct_file, masks, sample.parts_file


def prepare_cases(samples: Sequence[Sample], cache: CaseCache, shard: tuple[int, int] = (0, 1),
                  progress: Callable[[int, int], None] | None = None) -> dict[str, Path]:
    """Build the cache entries of this shard's cases (``shard`` = (index, count), e.g. the local
    rank and local world size) and return every case's cache path (the others' are computed)."""
    cases: dict[str, tuple[Path, Path | None, Path | None]] = {}
    for s in samples:
        cases.setdefault(s.case_id, case_files(s))
    paths: dict[str, Path] = {}
    failures: list[str] = []
    todo = sorted(cases)
    for n, case_id in enumerate(todo):
        ct, masks, parts = cases[case_id]
        if n % shard[1] == shard[0]:
            try:
                paths[case_id] = cache.ensure(case_id, ct, masks, parts)
            except Exception as exc:  # noqa: BLE001 - collected and reported with the file names below
                failures.append(f"{case_id} ({ct}): {exc}")
            if progress is not None:
                progress(n + 1, len(todo))
        else:
            paths[case_id] = cache.path_for(case_id, ct, masks, parts)
    if failures:
        raise RuntimeError(f"{len(failures)} case(s) could not be preprocessed: " + " | ".join(failures[:10]))
    return paths


class ManifestDataset(torch.utils.data.Dataset):
    """Examples of validated manifest samples whose cases are in ``cache`` (see prepare_cases)."""

    def __init__(self, samples: Sequence[Sample], case_paths: dict[str, Path], cache: CaseCache, tokenizer,
                 n_global: int, n_organ: int, eoa_id: int, placeholders: tuple[str, str],
                 cls_organs: str = "labeled", style=None):
        self.cache = cache
        self.n_global, self.n_organ = n_global, n_organ
        self.builder = SequenceBuilder(tokenizer, *placeholders)
        self.style = style  # the model's prompt layout (inference.iir.prompt_style), as inference builds it
        self.table = merged_labels()
        self.examples: list[Example] = []
        self.dropped: Counter = Counter()
        counts_of: dict[str, dict[int, int]] = {}
        for s in samples:
            path = case_paths[s.case_id]
            if s.case_id not in counts_of:
                counts_of[s.case_id] = cache.load(path).counts
            ex = self._example(s, path, counts_of[s.case_id], eoa_id, cls_organs)
            if ex is not None:
                self.examples.append(ex)
        if self.dropped:
            log.warning("dropped %d of %d samples: %s", sum(self.dropped.values()), len(samples), dict(self.dropped))
        if not self.examples:
            raise ValueError("no usable training samples (see the warnings above)")

    def _example(self, s: Sample, path: Path, counts: dict[int, int], eoa_id: int, cls_organs: str) -> Example | None:
        plan = plan_chain(s.question, [(r.answer, r.attend) for r in s.chain], counts, self.n_global, self.n_organ,
                          eoa_id, self.table, style=self.style)
        if not plan.agrees:
            # inference would examine other organs (or run another round) than this chain teaches
            self.dropped["chain differs from what the IIR loop examines"] += 1
            return None
        seq = self.builder.build(plan.segments)
        slots = [[sl.start, KIND_GLOBAL if sl.kind == "global" else KIND_ORGAN,
                  -1 if sl.kind == "global" else int(sl.mask_label)] for sl in seq.slots]
        cls = []
        wanted = s.organ_labels.items() if cls_organs == "labeled" else (
            (self.table.by_id(m).name, s.organ_labels.get(self.table.by_id(m).name)) for m in dict.fromkeys(plan.organs))
        for name, target in wanted:
            if target is None or name not in self.table:
                continue
            lid = self.table.by_name(name).id
            if counts.get(lid, 0) > 0:
                cls.append([lid, int(target)])
        return Example(s.id, path, seq.input_ids, seq.labels(), torch.tensor(slots, dtype=torch.long).reshape(-1, 3),
                       torch.tensor(cls, dtype=torch.long).reshape(-1, 2))

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        ex = self.examples[i]
        return {"example": ex, "case": self.cache.load(ex.case_path)}

    def case_ids(self) -> list[str]:
        """The case key of every example (for case-grouped batching)."""
        return [str(ex.case_path) for ex in self.examples]

    def lengths(self) -> list[int]:
        return [len(ex.input_ids) for ex in self.examples]
