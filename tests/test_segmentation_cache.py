"""Per-case segmentation cache: content-hash keys, no second run, corrupt entries rebuilt, no pickle."""
from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import pytest

from fakes.counting_expert import CountingExpert
from inference.ct_volume import CTVolume
from inference.segmentation import make_expert
from inference.segmentation.cache import CachedExpert, SegmentationCache, default_cache_dir
from inference.segmentation.totalseg_backend import TotalSegmentatorExpert


def make_ct(seed: int = 0, shape=(24, 20, 12)) -> CTVolume:
    rng = np.random.default_rng(seed)
    hu = rng.integers(-1000, 1000, size=shape).astype(np.int16)
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    affine[:3, 3] = [-10.0, 20.0, -30.0]
    return CTVolume(hu=hu, affine=affine, source_path=Path(f"/data/ct{seed}.nii.gz"))


@pytest.fixture
def cache(tmp_path) -> SegmentationCache:
    return SegmentationCache(tmp_path / "cache")


def test_second_review_costs_no_backend_call(cache):
    inner = CountingExpert()
    expert = CachedExpert(inner, cache)
    ct = make_ct()
    first = expert.segment(ct)
    seen = []
    # the same CT content loaded again (a new object, e.g. the next session) hits the cache
    again = CTVolume(hu=ct.hu.copy(), affine=ct.affine.copy(), source_path=Path("/elsewhere/same.nii.gz"))
    second = expert.segment(again, progress=lambda f, m: seen.append((f, m)))
    assert inner.calls == 1
    assert np.array_equal(first.organs, second.organs) and np.array_equal(first.parts, second.parts)
    assert second.organs.dtype == np.uint8 and second.parts.dtype == np.uint8
    assert np.allclose(second.affine, ct.affine) and second.backend == "counting"
    assert second.details["cache"]["hit"] and second.details["threshold"] == 0
    assert seen == [(1.0, "organ masks loaded from cache")]
    assert second.volume_ml(5) == pytest.approx(first.volume_ml(5))


def test_keys_follow_content_backend_and_options(cache):
    ct = make_ct()
    a = cache.key(ct, TotalSegmentatorExpert().cache_identity())
    assert a == cache.key(make_ct(), TotalSegmentatorExpert().cache_identity())
    assert a != cache.key(ct, TotalSegmentatorExpert(fast=True).cache_identity())
    assert a != cache.key(ct, TotalSegmentatorExpert(liver_segments=True).cache_identity())
    assert a != cache.key(ct, TotalSegmentatorExpert(roi_subset=["liver"]).cache_identity())
    # roi order does not matter, the device does not change the result
    assert (cache.key(ct, TotalSegmentatorExpert(roi_subset=["liver", "spleen"]).cache_identity())
            == cache.key(ct, TotalSegmentatorExpert(roi_subset=["spleen", "liver"], device="cpu").cache_identity()))
    assert a != cache.key(make_ct(seed=1), TotalSegmentatorExpert().cache_identity())
    shifted = make_ct()
    shifted.affine[0, 3] += 5.0
    assert a != cache.key(CTVolume(hu=shifted.hu, affine=shifted.affine, source_path=shifted.source_path),
                          TotalSegmentatorExpert().cache_identity())

    # different options really run the backend again
    low, high = CountingExpert(threshold=0), CountingExpert(threshold=500)
    CachedExpert(low, cache).segment(ct)
    masks = CachedExpert(high, cache).segment(ct)
    assert (low.calls, high.calls) == (1, 1)
    assert masks.details["threshold"] == 500 and (masks.organs == 5).sum() == (ct.hu > 500).sum()


def test_corrupt_entry_is_logged_and_rebuilt(cache, caplog):
    inner = CountingExpert()
    expert = CachedExpert(inner, cache)
    ct = make_ct()
    expert.segment(ct)
    entry = cache.path_for(cache.key(ct, inner.cache_identity()))
    assert entry.is_file()
    entry.write_bytes(entry.read_bytes()[:100])  # truncated, as after a crash or a full disk
    with caplog.at_level(logging.WARNING, logger="inference.segmentation.cache"):
        masks = expert.segment(ct)
    assert inner.calls == 2
    assert any("ignoring unusable segmentation cache file" in r.message and str(entry) in r.getMessage()
               for r in caplog.records)
    assert (masks.organs == 5).sum() == (ct.hu > 0).sum()
    # rebuilt: a third review hits the new entry
    expert.segment(ct)
    assert inner.calls == 2


def test_entry_for_another_grid_is_ignored(cache):
    inner = CountingExpert()
    ct = make_ct()
    key = cache.key(ct, inner.cache_identity())
    entry = cache.path_for(key)
    entry.parent.mkdir(parents=True)
    np.savez_compressed(entry, organs=np.zeros((3, 3, 3), np.uint8), affine=ct.affine, meta=np.array("{}"))
    CachedExpert(inner, cache).segment(ct)
    assert inner.calls == 1


def test_pickled_entry_is_never_unpickled(cache, tmp_path):
    """An entry smuggling a pickle (object array) must not run code: it is rejected and rebuilt."""
    sentinel = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (sentinel,))

    assert pickle.loads(pickle.dumps(Payload())) is None and sentinel.exists()  # the payload works...
    sentinel.unlink()

    inner = CountingExpert()
    ct = make_ct()
    entry = cache.path_for(cache.key(ct, inner.cache_identity()))
    entry.parent.mkdir(parents=True)
    meta = np.empty((), dtype=object)
    meta[()] = Payload()
    np.savez(entry, organs=np.zeros(ct.shape, np.uint8), affine=ct.affine, meta=meta)  # pickles meta
    masks = CachedExpert(inner, cache).segment(ct)
    assert not sentinel.exists()  # ...but the cache never unpickled it
    assert inner.calls == 1 and "cache" not in masks.details
    with np.load(entry, allow_pickle=False) as data:  # the rebuilt entry holds plain arrays only
        assert all(data[k].dtype != object for k in data.files)


def test_no_temp_files_left_and_default_dir(cache, monkeypatch, tmp_path):
    CachedExpert(CountingExpert(with_parts=False), cache).segment(make_ct())
    files = [p for p in cache.root.rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].suffix == ".npz"
    with np.load(files[0], allow_pickle=False) as data:
        assert "parts" not in data.files
    monkeypatch.setenv("TUMORCHAIN_SEGMENTATION_CACHE", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("TUMORCHAIN_SEGMENTATION_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "tumorchain" / "segmentation"


def test_make_expert_wraps_totalsegmentator_only_by_default(tmp_path):
    ts = make_expert("totalsegmentator", cache_dir=tmp_path)
    assert isinstance(ts, CachedExpert) and ts.cache.root == tmp_path and ts.name == "totalsegmentator"
    assert not isinstance(make_expert("synthetic"), CachedExpert)
    assert isinstance(make_expert("synthetic", cache=True, cache_dir=tmp_path), CachedExpert)
    assert not isinstance(make_expert("totalseg", cache=False), CachedExpert)
    with pytest.raises(ValueError, match="unknown segmentation backend"):
        make_expert("nnunet")
