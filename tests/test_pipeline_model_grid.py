"""The pipeline feeds a model its own configured input grid, not the M3D default 32x256x256."""
from __future__ import annotations

import pytest

from inference.iir.decoding import SamplingConfig
from inference.iir.loop import IIRSettings
from tests.test_preprocess import phantom
from tests.tiny_models import one_torch_thread, tiny_config, tiny_model


@pytest.fixture(autouse=True)
def _single_thread():
    with one_torch_thread():
        yield


def _analyze_phantom(tmp_path, config):
    """A tiny model of this config, saved and loaded in a Pipeline, asked about the phantom's liver:
    (the run record, the pipeline's cached (model input, encoding))."""
    from inference.pipeline import Pipeline

    model = tiny_model(tmp_path, config)
    model.save_pretrained(tmp_path / "model")
    ct, masks = phantom()
    settings = IIRSettings(max_rounds=2, sampling=SamplingConfig(max_new_tokens=4))
    pipe = Pipeline(model, tmp_path / "model", settings=settings)
    record = pipe.analyze_volume(ct, masks, "Is there a lesion in the liver?")
    return record, next(iter(pipe._encodings.values()))


def test_analyze_volume_preprocesses_to_the_models_img_size(tmp_path):
    record, (model_input, encoding) = _analyze_phantom(tmp_path, tiny_config(img_size=(8, 64, 64)))
    assert tuple(model_input.volume.shape[-3:]) == (8, 64, 64)
    assert encoding.grid == (2, 4, 4)  # 8x64x64 in 4x16x16 patches
    assert record.rounds and record.rounds[0].text is not None


def test_a_masked_gamma_model_analyzes_end_to_end(tmp_path):
    """A model with a conv stem and gamma_mode 'masked' runs the whole pipeline: the encoding keeps
    the stem features and every examined organ gets tokens and P(abnormal)."""
    from inference.model.config import TumorChainConfig, VisionConfig

    cfg = TumorChainConfig(vision=VisionConfig(img_size=(8, 64, 64), patch_size=(4, 16, 16), hidden_size=32, mlp_dim=64,
                                               num_layers=1, num_heads=4, stem_channels=(4,), stem_strides=((1, 2, 2),)),
                           n_organ_tokens=4, gamma_mode="masked", projector_hidden=48)
    record, (_, encoding) = _analyze_phantom(tmp_path, cfg)
    assert tuple(encoding.features.shape) == (1, 4, 8, 32, 32)
    examined = [r for r in record.rounds if r.organs]
    assert examined, "the question names the liver, so round 2 examines it"
    assert all(0.0 <= o.abnormal_prob <= 1.0 and o.n_tokens == 4 for r in examined for o in r.organs)
