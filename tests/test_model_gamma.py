"""Gamma (local organ tokens) and the auxiliary classifier, on a tiny model (grid 2x4x4, patch 4x16x16)."""
from __future__ import annotations

import pytest
import torch

from inference.model.organ_classifier import abnormal_probability, organ_loss
from inference.model.organ_tokens import crop_box, patch_coverage, select_patches
from inference.preprocess import resample_box, resample_labels

from tiny_models import one_torch_thread, tiny_config, tiny_model

GRID = (2, 4, 4)
SHAPE = (8, 64, 64)


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_torch_thread():
        yield


def patch_index(z: int, y: int, x: int) -> int:
    return (z * GRID[1] + y) * GRID[2] + x


def mask_of(patches=(), voxels=()) -> torch.Tensor:
    """Bool (8, 64, 64) mask filling whole patches (z, y, x) and single voxels (d, h, w)."""
    m = torch.zeros(SHAPE, dtype=torch.bool)
    for z, y, x in patches:
        m[4 * z:4 * z + 4, 16 * y:16 * y + 16, 16 * x:16 * x + 16] = True
    for d, h, w in voxels:
        m[d, h, w] = True
    return m


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("gamma"), tiny_config(n_organ_tokens=4))


@pytest.fixture(scope="module")
def case(model):
    torch.manual_seed(1)
    volume = torch.rand(1, 1, *SHAPE)
    with torch.no_grad():
        return volume, model.encode_case(volume)


def test_gamma_takes_exactly_the_covered_patches_encoder_outputs(model, case):
    _, enc = case
    # three whole patches and one patch touched by a single voxel (border patches count)
    mask = mask_of(patches=[(0, 0, 0), (0, 0, 1), (1, 3, 2)], voxels=[(1, 20, 17)])
    expected = sorted([patch_index(0, 0, 0), patch_index(0, 0, 1), patch_index(0, 1, 1), patch_index(1, 3, 2)])
    with torch.no_grad():
        tokens, selection = model.organ_selection(enc, mask)
        projected = model.organ_tokens(enc, mask)
    assert selection.mode == "picked" and selection.n_covered == 4
    assert selection.patch_indices() == [[i] for i in expected]
    assert torch.equal(tokens, enc.tokens[:, expected])
    assert torch.allclose(projected, model.projector(enc.tokens[:, expected]))
    assert tuple(projected.shape) == (1, 4, model.config.llm_hidden_size)
    boxes = selection.patch_boxes(SHAPE)  # where each token looked, for the GUI
    assert boxes[0] == [((0.0, 0.0, 0.0), (4.0, 16.0, 16.0))] and boxes[3] == [((4.0, 48.0, 32.0), (8.0, 64.0, 48.0))]


def test_small_organ_is_padded_with_its_nearest_neighbours():
    coverage = patch_coverage(mask_of(voxels=[(0, 20, 20)]), (4, 16, 16))  # only patch (0, 1, 1)
    selection = select_patches(coverage, GRID, 4)
    # distance-1 neighbours of (0,1,1): (0,0,1), (0,1,0), (0,1,2), (0,2,1), (1,1,1); ties by raster index
    assert [i[0] for i in selection.patch_indices()] == sorted([1, 4, 5, 6])
    assert selection.n_covered == 1 and selection.mode == "picked"


def test_large_organ_is_pooled_into_compact_groups():
    coverage = patch_coverage(mask_of(patches=[(0, 0, x) for x in range(4)]), (4, 16, 16))
    selection = select_patches(coverage, GRID, 2)
    assert selection.mode == "pooled"
    assert selection.patch_indices() == [[0, 1], [2, 3]]  # split along x, the axis of largest extent
    tokens = torch.rand(1, 32, 5)
    from inference.model.visual_inputs import gamma_from_weights

    out = gamma_from_weights(tokens, selection.weights[None], torch.zeros(1, dtype=torch.long))
    assert torch.allclose(out[0, 0], tokens[0, [0, 1]].mean(0)) and torch.allclose(out[0, 1], tokens[0, [2, 3]].mean(0))


def test_pooled_groups_partition_the_organ_in_near_equal_sizes():
    torch.manual_seed(3)
    coverage = (torch.rand(32) > 0.3).float()  # ~22 covered patches
    selection = select_patches(coverage, GRID, 5)
    groups = selection.patch_indices()
    members = sorted(i for g in groups for i in g)
    assert members == torch.nonzero(coverage).flatten().tolist()  # disjoint and complete
    sizes = [len(g) for g in groups]
    assert max(sizes) - min(sizes) <= 1
    assert torch.allclose(selection.weights.sum(dim=1), torch.ones(5))


def test_empty_or_misshaped_mask_is_a_clear_error(model, case):
    _, enc = case
    with pytest.raises(ValueError, match="empty"):
        model.organ_tokens(enc, torch.zeros(SHAPE, dtype=torch.bool))
    with pytest.raises(ValueError, match="must be"):
        model.organ_tokens(enc, torch.ones(8, 64, 32, dtype=torch.bool))


def test_crop_box_keeps_the_grid_proportions_and_contains_the_organ():
    mask = mask_of(voxels=[(3, 10, 40), (4, 30, 50)])
    lo, hi = crop_box(mask, margin=0.15, min_extent=(2, 16, 16))
    ext = [h - l for l, h in zip(lo, hi)]
    assert ext[0] / SHAPE[0] == pytest.approx(ext[1] / SHAPE[1]) == pytest.approx(ext[2] / SHAPE[2])
    assert lo[0] <= 3 and hi[0] >= 5 and lo[1] <= 10 and hi[1] >= 31 and lo[2] <= 40 and hi[2] >= 51
    assert min(lo) >= 0 and all(h <= s for h, s in zip(hi, SHAPE))  # fits, so moved inside


def test_crop_mode_re_encodes_the_organ_box(model, case):
    volume, enc = case
    mask = mask_of(voxels=[(5, 40, 40), (6, 44, 46)])
    model.config.gamma_mode = "crop"
    try:
        with torch.no_grad():
            tokens, selection = model.organ_selection(enc, mask, volume)
            with pytest.raises(ValueError, match="needs the volume"):
                model.organ_tokens(enc, mask)
    finally:
        model.config.gamma_mode = "tokens"
    lo, hi = crop_box(mask, model.config.crop_margin, model.config.crop_min_extent)
    with torch.no_grad():
        crop_enc = model.encode_case(resample_box(volume[0, 0], lo, hi, SHAPE)[None, None])
    crop_mask = torch.from_numpy(resample_labels(mask.numpy().astype("uint8"), lo, hi, SHAPE) > 0)
    expected = select_patches(patch_coverage(crop_mask, (4, 16, 16)), GRID, 4)
    assert torch.equal(selection.weights, expected.weights)
    assert torch.allclose(tokens, crop_enc.tokens[:, [i[0] for i in expected.patch_indices()]])
    assert selection.n_covered > 1  # two voxels in the case grid cover several patches after the zoom
    assert selection.box == (lo, hi)
    boxes = [b for token in selection.patch_boxes(SHAPE) for b in token]
    inside = lambda p, b: all(l - 1e-9 <= c <= h + 1e-9 for c, l, h in zip(p, *b))  # noqa: E731
    assert all(inside(b[0], (lo, hi)) and inside(b[1], (lo, hi)) for b in boxes)
    assert any(inside((5.5, 40.5, 40.5), b) for b in boxes)  # the organ voxel is among the looked-at patches


def test_classifier_learns_separable_organs_and_trains_the_encoder(model):
    """Cross-entropy on Cls(P(Gamma(E_v(x)))) falls on toy data, and its gradient reaches E_v."""
    torch.manual_seed(0)
    mask = mask_of(patches=[(0, 1, 1), (0, 1, 2), (1, 2, 1), (1, 2, 2)])
    normal = torch.rand(3, 1, *SHAPE) * 0.2 + 0.4
    abnormal = normal.clone()
    abnormal[:, :, 0:4, 16:32, 16:24] = 1.0  # a bright lesion filling half of organ patch (0, 1, 1)
    volumes, labels = torch.cat([normal, abnormal]), torch.tensor([0] * 3 + [1] * 3)
    params = [*model.vision_encoder.parameters(), *model.projector.parameters(), *model.classifier.parameters()]
    before = [p.detach().clone() for p in model.vision_encoder.parameters()]
    opt = torch.optim.Adam(params, lr=3e-3)
    losses = []
    model.train()
    try:
        for _ in range(12):
            logits = model.organ_logits(model.organ_tokens(model.encode_case(volumes), mask))  # batch of 6 cases
            loss = organ_loss(logits, labels)
            opt.zero_grad()
            loss.backward()
            if not losses:
                assert model.vision_encoder.patch_embedding.patch_embeddings[1].weight.grad.abs().sum() > 0
            opt.step()
            losses.append(loss.item())
    finally:
        model.eval()
    assert tuple(logits.shape) == (6, 2)
    assert losses[-1] < 0.7 * losses[0]
    assert logits.argmax(dim=1).tolist() == labels.tolist()
    assert ((abnormal_probability(logits) > 0.5).long() == labels).all()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.vision_encoder.parameters()))


def _masked_config(n_organ_tokens: int = 4):
    from inference.model.config import TumorChainConfig, VisionConfig

    return TumorChainConfig(
        vision=VisionConfig(img_size=SHAPE, patch_size=(4, 16, 16), hidden_size=32, mlp_dim=64, num_layers=1,
                            num_heads=4, stem_channels=(4, 6), stem_strides=((1, 2, 2), (1, 2, 2))),
        n_organ_tokens=n_organ_tokens, gamma_mode="masked", projector_hidden=48)


def test_masked_weights_average_the_organs_own_stem_voxels_per_token():
    from inference.model.organ_tokens import masked_weights

    mask = mask_of(patches=[(0, 0, 0)], voxels=[(5, 20, 20)])  # patch (0,0,0) whole + one voxel in patch (1,1,1)
    sel = select_patches(patch_coverage(mask, (4, 16, 16)), GRID, 4)  # 2 covered + 2 context patches
    w = masked_weights(mask, sel, (1, 4, 4), (4, 4, 4))  # stem grid (8, 16, 16)
    assert tuple(w.shape) == (5, 8 * 16 * 16)  # 4 tokens, then the whole organ
    assert torch.allclose(w.sum(1), torch.ones(5))
    organ = w[4]  # the full patch's 64 stem voxels and the lone voxel at its 1/16 share
    assert int((organ > 0).sum()) == 65
    assert torch.isclose(organ[(5 * 16 + 5) * 16 + 5], torch.tensor((1 / 16) / (64 + 1 / 16)))
    w = w[:4]
    counts = sorted(int((row > 0).sum()) for row in w)
    # the single organ voxel (stem voxel (5, 5, 5)), two context patches of 4x4x4 stem voxels, the full patch
    assert counts == [1, 64, 64, 64]
    lone = next(row for row in w if int((row > 0).sum()) == 1)
    assert int(torch.nonzero(lone)[0]) == (5 * 16 + 5) * 16 + 5

    # a stem voxel counts by the share of its model voxels inside the organ: a border voxel that
    # holds 2 of its 16 weighs 2/18 against a full neighbour's 16/18 (not half each)
    mask = mask_of(voxels=[(1, 4 + i, 4 + j) for i in range(4) for j in range(4)] + [(1, 8, 8), (1, 8, 9)])
    sel = select_patches(patch_coverage(mask, (4, 16, 16)), GRID, 1)
    w = masked_weights(mask, sel, (1, 4, 4), (4, 4, 4))
    assert torch.equal(w[0], w[1])  # one token covering the whole organ: its row is the organ's
    w = w[0]
    full, border = (1 * 16 + 1) * 16 + 1, (1 * 16 + 2) * 16 + 2
    assert torch.allclose(w[[full, border]], torch.tensor([16 / 18, 2 / 18]))
    assert int((w > 0).sum()) == 2


def test_masked_gamma_ignores_voxels_outside_the_organ_and_saves_its_pooling_layer(tmp_path):
    """Changing voxels outside the organ but inside its patches moves patch tokens (tokens mode)
    and leaves masked-mode organ tokens unchanged (beyond the stem's 3x3x3 reach)."""
    from inference.model import TumorChainModel

    model = tiny_model(tmp_path / "m", _masked_config(n_organ_tokens=1))  # one token: no context patches
    assert "organ_pool" in model.parts
    assert model.parameter_counts()["organ_pool"] == (4 * 6 + 1) * 32 + 256 * 32  # linear + organ embedding
    torch.manual_seed(2)
    x = torch.rand(1, 1, *SHAPE)
    mask = torch.zeros(SHAPE, dtype=torch.bool)
    mask[0:4, 0:8, 0:8] = True  # the organ: one corner of patch (0, 0, 0)
    y = x.clone()
    y[0, 0, 0:4, 0:16, 12:16] += 1.0  # same patch, beyond the two strided 3x3x3 layers' reach (model
    y[0, 0, 0:4, 12:16, 0:12] += 1.0  # voxel 7) from the organ's last stem voxel
    with torch.no_grad():
        a = model.organ_tokens(model.encode_case(x), mask, label=5)
        b = model.organ_tokens(model.encode_case(y), mask, label=5)
        assert tuple(a.shape) == (1, 1, model.config.llm_hidden_size)
        assert torch.allclose(a, b, atol=1e-6)
        assert not torch.allclose(model.encode_case(x).tokens, model.encode_case(y).tokens)
    model.save_pretrained(tmp_path / "saved")
    again = TumorChainModel.from_pretrained(tmp_path / "saved", device="cpu", dtype=torch.float32)
    assert torch.equal(again.organ_pool.linear.weight, model.organ_pool.linear.weight)
    with torch.no_grad():
        assert torch.allclose(again.organ_tokens(again.encode_case(x), mask, label=5), a, atol=1e-6)
        with pytest.raises(ValueError, match="label id"):
            model.organ_tokens(model.encode_case(x), mask)


def test_masked_gamma_tokens_carry_the_organs_identity(tmp_path):
    """The same voxels read as two different organs give different tokens once the organ embedding
    has learned anything (it starts at zero: identical tokens)."""
    model = tiny_model(tmp_path / "m", _masked_config(n_organ_tokens=2))
    x = torch.rand(1, 1, *SHAPE)
    mask = torch.zeros(SHAPE, dtype=torch.bool)
    mask[0:8, 0:32, 0:32] = True
    with torch.no_grad():
        enc = model.encode_case(x)
        assert torch.equal(model.organ_tokens(enc, mask, label=5), model.organ_tokens(enc, mask, label=7))
        model.organ_pool.organ.weight[7].normal_()
        assert not torch.allclose(model.organ_tokens(enc, mask, label=5), model.organ_tokens(enc, mask, label=7))


def test_masked_gamma_needs_a_stem():
    from inference.model.config import TumorChainConfig

    with pytest.raises(ValueError, match="stem_channels"):
        TumorChainConfig(gamma_mode="masked")
