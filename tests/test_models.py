"""The seed's models, parameter for parameter, and the stride rules of the decoders."""
from __future__ import annotations

import pytest
from hydra.utils import instantiate

from protstruct.models import backbones, decoders
from protstruct.models.model import build_model
from tests.test_config import _compose


@pytest.mark.parametrize("experiment,params", [("p0", 26_033_409), ("p1", 26_015_233)])
def test_seed_models_have_exact_parameter_counts_at_crop_256(experiment, params):
    cfg = _compose(f"experiment={experiment}")
    model = build_model(instantiate(cfg.backbone.build), instantiate(cfg.decoder), cfg.data.crop_size, 1,
                        cfg.backbone.output_stride, cfg.dropout.rate)
    assert model.count_params() == params
    assert model.output.shape == (None, 256, 256, 1)
    has_dropout = any(layer.__class__.__name__ == "Dropout" for layer in model.layers)
    assert has_dropout == (experiment == "p1")


def test_p0_decoder_strides_are_2_2_8_for_resnet50():
    model = build_model(backbones.resnet50, decoders.transpose, 64, 1, 32)
    strides = [layer.strides for layer in model.layers if layer.__class__.__name__ == "Conv2DTranspose"]
    assert strides == [(2, 2), (2, 2), (8, 8)]


@pytest.mark.parametrize("decoder", [decoders.transpose, decoders.upsample])
@pytest.mark.parametrize("crop", [16, 40, 64])
def test_small_backbone_works_at_any_multiple_of_its_stride(decoder, crop):
    model = build_model(backbones.small_cnn, decoder, crop, 1, 8, 0.3)
    assert model.output.shape == (None, crop, crop, 1)


def test_crop_that_does_not_fit_the_stride_is_a_clear_error():
    with pytest.raises(ValueError, match="data.crop_size=36 .* multiple of the backbone's output stride 8"):
        build_model(backbones.small_cnn, decoders.transpose, 36, 1, 8)


def test_dropout_rate_out_of_range_is_a_clear_error():
    with pytest.raises(ValueError, match=r"dropout.rate: expected a value in \[0, 1\)"):
        build_model(backbones.small_cnn, decoders.upsample, 16, 1, 8, 1.5)
