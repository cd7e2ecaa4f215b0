"""The case model (app/case_model.py) and the controller that fills it, headless: every test
builds a fresh model; the controller runs its jobs with SyncJobRunner (no threads, no event
loop, no display)."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from app.case_model import EVENTS, CaseModel
from app.prepared_masks import prepare_masks
from fakes.counting_expert import CountingExpert
from inference.ct_io import load_ct
from inference.segmentation.organ_masks import mask_hash
from inference.segmentation.precomputed import PrecomputedExpert
from iir_fakes import write_case
from report_fixtures import make_run


def counted(model: CaseModel) -> Counter:
    """How often each event of ``model`` fired (with its arguments)."""
    fired: Counter = Counter()
    for name in EVENTS:
        model.events.connect(name, lambda *args, n=name: fired.update([(n, *args)]))
    return fired


@pytest.fixture
def case_files(tmp_path):
    return write_case(tmp_path / "case")  # (ct.nii.gz, organs.nii.gz)


@pytest.fixture
def ct_and_masks(case_files):
    ct_path, organs_path = case_files
    ct = load_ct(ct_path)
    return ct, PrecomputedExpert(organs_path).segment(ct)


def controller(tmp_path, **kwargs):
    from app.case_controller import CaseController
    from app.case_store import CaseStore
    from app.job_runner import SyncJobRunner
    from app.settings import AppSettings
    from viewer.scene_state import SceneState

    c = CaseController(SceneState(), AppSettings(reviewer="Dr Model"), store=CaseStore(tmp_path / "reviews"),
                       runner=SyncJobRunner, **kwargs)
    c.errors = []
    c.error.connect(lambda title, msg: c.errors.append(f"{title}: {msg}"))
    return c


def test_change_events_fire_once_per_change(ct_and_masks):
    ct, masks = ct_and_masks
    model = CaseModel()
    fired = counted(model)
    model.set_case(ct, prepare_masks(masks, ct, "organs.nii.gz"))
    assert fired == {("case",): 1}
    other = CountingExpert().segment(ct)
    model.set_masks(prepare_masks(other, ct))
    assert fired == {("case",): 1, ("masks",): 1}
    model.show_run(None)
    model.set_draft("round-1", "typed")
    model.set_draft("round-1", "typed")  # no change: no event
    model.set_draft("round-2", "")  # nothing to discard: no event
    model.review_applied("round-1")
    assert fired == {("case",): 1, ("masks",): 1, ("run",): 1, ("drafts", "round-1"): 1, ("review", "round-1"): 1}
    assert model.drafts == {}  # the applied decision used the draft
    with pytest.raises(ValueError):
        model.events.connect("nonsense", lambda: None)


def test_the_mask_source_and_hash_are_those_of_the_masks_on_screen(ct_and_masks):
    ct, masks = ct_and_masks
    model = CaseModel()
    model.set_case(ct, prepare_masks(masks, ct, "organs.nii.gz"))
    assert model.masks is model.scene.masks and model.mask_source == "organs.nii.gz"
    assert model.mask_hash == mask_hash(masks.organs, masks.parts, masks.affine)
    # masks put into the scene behind the model's back have no known source (it cannot drift)
    other = CountingExpert().segment(ct)
    model.scene.set_case(ct, other)
    assert model.mask_source is None and model.mask_hash == mask_hash(other.organs, other.parts, other.affine)


def test_prepare_masks_hashes_once_in_the_cts_memory_order(ct_and_masks):
    ct, masks = ct_and_masks
    c_order = type(masks)(organs=np.ascontiguousarray(masks.organs), affine=masks.affine, backend="x")
    prepared = prepare_masks(c_order, ct, None)
    assert prepared.masks.organs.flags.f_contiguous == ct.hu.flags.f_contiguous
    assert getattr(prepared.masks, "_hash", None) == c_order.content_hash()  # computed on the worker thread
    assert prepared.boxes[0].ids() == sorted(set(np.unique(masks.organs).tolist()) - {0})


def test_after_a_segmentation_the_model_names_the_masks_shown(tmp_path, case_files):
    ct_path, organs_path = case_files
    expert = CountingExpert(threshold=45, with_parts=False)
    c = controller(tmp_path, expert_factory=lambda name, **options: expert)
    fired = counted(c.model)
    assert c.open_path(ct_path, organs_path)
    assert not c.busy_kinds() and not c.errors
    file_masks = c.state.masks
    assert c.model.mask_source == str(organs_path)
    assert c.model.mask_hash == mask_hash(file_masks.organs, file_masks.parts, file_masks.affine)

    assert c.segment("counting")
    assert expert.calls == 1 and not c.busy_kinds() and not c.errors
    shown = c.state.masks
    assert shown is not file_masks and shown.backend == "counting"
    assert c.model.mask_source is None  # no file: the run will record none
    assert c.model.mask_hash == mask_hash(shown.organs, shown.parts, shown.affine) != mask_hash(
        file_masks.organs, file_masks.parts, file_masks.affine)
    assert fired == {("case",): 1, ("run",): 1, ("masks",): 1}


def test_the_model_round_trips_a_run_and_its_review(tmp_path, case_files):
    ct_path, organs_path = case_files
    c = controller(tmp_path)
    assert c.open_path(ct_path, organs_path)
    run = make_run(c.ct, c.masks)
    run.segmentation.mask_source = str(organs_path)
    c.store.save_run(run)
    fired = counted(c.model)
    c.show_run(run)
    assert c.model.run is run and c.model.review.reviewer == "Dr Model" and c.model.run_matches_masks()
    assert c.decide("round-1", "agreed")
    c.set_draft("round-2", "my words")
    c.flush_drafts()
    assert fired == {("run",): 1, ("review", "round-1"): 1, ("drafts", "round-2"): 1}
    c.shutdown()

    again = controller(tmp_path)  # the case opened again, CT alone: run, review, drafts and masks come back
    assert again.open_path(ct_path)
    assert not again.busy_kinds() and not again.errors
    m = again.model
    assert m.run.to_dict() == run.to_dict()
    assert m.review.to_dict() == c.model.review.to_dict()
    assert m.review.current("round-1").decision == "agreed" and m.drafts == {"round-2": "my words"}
    assert m.mask_source == str(organs_path) and m.run_matches_masks()
