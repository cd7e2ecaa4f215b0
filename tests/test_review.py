"""The review model: decisions beside the untouched AI text, sign-off and amendments, JSON round
trips, atomic autosave that survives a killed process."""
from __future__ import annotations

import json
import os
import signal
import multiprocessing
import time
from pathlib import Path

import pytest

from inference.ct_volume import CTVolume
from inference.errors import InputError
from inference.run_record import RunRecord
from inference.report.review import CONCLUSION, Review, ReviewError, round_key, run_key
from inference.report.review_store import (ReviewAutosaver, load_review, open_review, review_path_for_run,
                                           save_review, user_review_path)
from inference.segmentation.organ_masks import OrganMasks
from report_fixtures import ROUND_TEXTS, make_run, synthetic_arrays

@pytest.fixture(scope="module")
def run():
    hu, organs, parts, affine = synthetic_arrays((24, 20, 8))
    ct = CTVolume(hu=hu, affine=affine, source_path=Path("case.nii.gz"))
    return make_run(ct, OrganMasks(organs=organs, affine=affine, backend="synthetic", parts=parts))


def test_a_new_review_has_one_pending_item_per_round_and_the_conclusion(run):
    r = Review.for_run(run, reviewer="Dr Ada Reader")
    assert r.keys == ["round-1", "round-2", "round-3", CONCLUSION]
    assert [r.ai_text(round_key(i)) for i in (1, 2, 3)] == ROUND_TEXTS
    assert r.ai_text(CONCLUSION) == "pancreatic head cancer, M0"
    assert r.pending() == r.keys and not r.is_complete() and not r.is_signed
    assert r.run_key == run_key(run) and len(r.run_key) == 16


def test_an_edit_is_stored_beside_the_ai_text_never_over_it(run):
    r = Review.for_run(run, reviewer="Dr Ada Reader")
    r.decide("round-2", "edited", text="Pancreatic head lesion, 30 mm.", comment="measured again")
    assert r.ai_text("round-2") == ROUND_TEXTS[1]
    assert r.effective_text("round-2") == "Pancreatic head lesion, 30 mm."
    assert r.effective("round-2").reviewer == "Dr Ada Reader" and r.effective("round-2").at
    r.decide("round-2", "agreed")  # changing one's mind before signing replaces the draft decision ...
    assert r.effective_text("round-2") == ROUND_TEXTS[1]
    assert [h.decision.decision for h in r.history] == ["edited", "agreed"]  # ... and the trail keeps both
    d = r.to_dict()
    item = next(i for i in d["items"] if i["key"] == "round-2")
    assert item["ai_text"] == ROUND_TEXTS[1]


@pytest.mark.parametrize("call, message", [
    (lambda r: r.decide("round-1", "edited"), "needs the edited text"),
    (lambda r: r.decide("round-1", "edited", text="   "), "needs the edited text"),
    (lambda r: r.decide("round-1", "agreed", text="x"), "only an 'edited'"),
    (lambda r: r.decide("round-1", "maybe"), "not one of"),
    (lambda r: r.decide("round-9", "agreed"), "no review item 'round-9'"),
])
def test_bad_decisions_are_refused_and_change_nothing(run, call, message):
    r = Review.for_run(run)
    before = r.to_dict()
    with pytest.raises(ReviewError, match=message):
        call(r)
    assert r.to_dict() == before


def test_signing_needs_every_item_decided_a_name_and_confirmation(run):
    r = Review.for_run(run)
    for k in ("round-1", "round-2", "round-3"):
        r.decide(k, "agreed")
    with pytest.raises(ReviewError, match="still pending: conclusion"):
        r.sign("Dr B", confirm=True)
    r.decide(CONCLUSION, "rejected", comment="biopsy first")
    with pytest.raises(ReviewError, match="confirmation"):
        r.sign("Dr B", confirm=False)
    with pytest.raises(ReviewError, match="reviewer name"):
        r.sign("  ", confirm=True)
    s = r.sign("Dr B", confirm=True)
    assert r.is_signed and s.reviewer == "Dr B" == r.reviewer
    with pytest.raises(ReviewError, match="already signed"):
        r.sign("Dr B", confirm=True)


def test_after_sign_off_a_change_is_an_amendment_and_the_signed_decision_stays(run):
    r = Review.for_run(run, reviewer="Dr B")
    for k in r.keys:
        r.decide(k, "agreed")
    r.sign(confirm=True)
    r.decide(CONCLUSION, "edited", text="Pancreatic head cancer, M1 (liver).", reason="liver lesion on follow-up")
    assert r.current(CONCLUSION).decision == "agreed"  # the signed decision is untouched
    assert r.effective(CONCLUSION).decision == "edited"
    assert r.effective_text(CONCLUSION) == "Pancreatic head cancer, M1 (liver)."
    assert r.ai_text(CONCLUSION) == "pancreatic head cancer, M0"
    assert [(a.number, a.key, a.reason) for a in r.amendments] == [(1, CONCLUSION, "liver lesion on follow-up")]
    with pytest.raises(ReviewError, match="cannot return an item to pending"):
        r.decide("round-1", "pending")
    assert [h.kind for h in r.history][-2:] == ["signed", "amendment"]


def test_json_round_trip_and_file_round_trip_are_exact(run, tmp_path):
    r = Review.for_run(run, reviewer="Dr Ünal Çelik")
    r.decide("round-1", "edited", text="Leber: ≥ 2 Läsionen → 肝脏", comment="ümlaut")
    r.decide("round-2", "rejected")
    again = Review.from_dict(json.loads(r.to_json()))
    assert again == r and again.to_dict() == r.to_dict()
    path = save_review(r, tmp_path / "a" / "run.review.json")
    assert load_review(path) == r
    assert not list(path.parent.glob("*.tmp"))


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(schema="tumorchain.review/9"), "schema"),
    (lambda d: d["items"][0]["current"].update(decision="perhaps"), "items\\[0\\].current.decision"),
    (lambda d: d["items"][1]["current"].update(decision="edited", text=None), "needs its text"),
    (lambda d: d["items"][0].pop("ai_text"), "items\\[0\\].ai_text: missing"),
])
def test_a_damaged_review_file_is_refused_naming_the_file_and_field(run, tmp_path, mutate, message):
    d = Review.for_run(run).to_dict()
    mutate(d)
    path = tmp_path / "bad.review.json"
    path.write_text(json.dumps(d))
    with pytest.raises(InputError, match=message) as err:
        load_review(path)
    assert err.value.path == path


def test_not_json_and_missing_files_name_the_file(tmp_path):
    bad = tmp_path / "x.review.json"
    bad.write_text("{ half")
    with pytest.raises(InputError, match="not JSON"):
        load_review(bad)
    with pytest.raises(InputError, match="no such review file"):
        load_review(tmp_path / "missing.json")


def test_open_review_reopens_as_left_and_refuses_another_runs_review(run, tmp_path):
    path = review_path_for_run(tmp_path / "case" / "run.json")
    assert path == tmp_path / "case" / "run.review.json"
    fresh = open_review(run, path, reviewer="Dr C")
    assert fresh.pending() == fresh.keys
    saver = ReviewAutosaver(fresh, path)
    saver.decide("round-3", "edited", text="No liver metastasis.")
    reopened = open_review(run, path)
    assert reopened == fresh and reopened.effective_text("round-3") == "No liver metastasis."

    changed = json.loads(run.to_json())
    changed["rounds"][0]["text"] = "Something else. Thus, the answer is liver."
    other_run = RunRecord.from_dict(changed)
    before = path.read_bytes()
    with pytest.raises(InputError, match="belongs to another run"):
        open_review(other_run, path)
    assert path.read_bytes() == before  # the saved review is never replaced by a fresh one


def test_user_review_path_is_keyed_by_case_hash_and_run(run, tmp_path, monkeypatch):
    monkeypatch.setenv("TUMORCHAIN_REVIEW_DIR", str(tmp_path / "reviews"))
    p = user_review_path(run)
    assert p == tmp_path / "reviews" / run.case.content_hash[:16] / f"{run_key(run)}.review.json"


def _autosave_forever(run_json: str, review_file: str) -> None:
    """The child: autosave loop until killed; long texts make each write take a while."""
    saver = ReviewAutosaver(Review.for_run(RunRecord.load(run_json), reviewer="Dr Crash"), review_file)
    i = 0
    while True:
        i += 1
        saver.decide("round-%d" % (i % 3 + 1), "edited", text=("edit %d " % i) * 20000, comment=str(i))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks a child process (POSIX)")
@pytest.mark.parametrize("kill_after_s", [0.0, 0.15, 0.4])
def test_a_process_killed_mid_autosave_leaves_a_loadable_review(run, tmp_path, kill_after_s):
    run_json = run.save(tmp_path / "run.json")
    review_file = tmp_path / "run.review.json"
    # fork: the child starts with the parent's imports, so the kill lands within the save loop
    proc = multiprocessing.get_context("fork").Process(target=_autosave_forever,
                                                       args=(str(run_json), str(review_file)))
    proc.start()
    try:
        deadline = time.monotonic() + 30
        while not review_file.exists():
            assert proc.is_alive(), "the autosaving child died on its own"
            assert time.monotonic() < deadline, "the child never saved"
            time.sleep(0.005)
        time.sleep(kill_after_s)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.join()
    assert proc.exitcode == -signal.SIGKILL
    r = load_review(review_file)  # complete and valid, whatever instant the kill hit
    r.check_matches(run)
    counters = [int(r.current(k).comment) for k in ("round-1", "round-2", "round-3") if r.current(k).comment]
    assert counters and min(counters) >= 1
    for k in ("round-1", "round-2", "round-3"):
        d = r.current(k)
        if d.decision == "edited":  # every saved edit is whole: its text matches its counter
            assert d.text == (f"edit {d.comment} ") * 20000
    assert r.ai_text("round-1") == ROUND_TEXTS[0]
