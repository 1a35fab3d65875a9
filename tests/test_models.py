"""The original report's models, parameter for parameter, and the stride rules of the decoders."""

from __future__ import annotations

from functools import partial

import pytest
from hydra.utils import instantiate

from protstruct.models import backbones, decoders, geometry
from protstruct.models.model import build_model
from tests.compose import compose_config


@pytest.mark.parametrize("experiment,params", [("p0", 26_033_409), ("p1", 26_015_233)])
def test_original_models_have_exact_parameter_counts_at_crop_256(experiment, params):
    cfg = compose_config(f"experiment={experiment}")
    model = build_model(
        instantiate(cfg.backbone.build),
        instantiate(cfg.decoder),
        cfg.data.crop_size,
        1,
        cfg.backbone.output_stride,
        cfg.dropout.rate,
    )
    assert model.count_params() == params
    assert model.output.shape == (None, 256, 256, 1)
    has_dropout = any(layer.__class__.__name__ == "Dropout" for layer in model.layers)
    assert has_dropout == (experiment == "p1")


@pytest.mark.parametrize("decoder", ["upsample", "bilinear"])
def test_upsample_and_bilinear_decoders_differ_only_in_interpolation(decoder):
    cfg = compose_config("experiment=p1", f"decoder={decoder}")
    model = build_model(
        instantiate(cfg.backbone.build),
        instantiate(cfg.decoder),
        cfg.data.crop_size,
        1,
        cfg.backbone.output_stride,
        cfg.dropout.rate,
    )
    assert model.count_params() == 26_015_233  # P1's, whichever the interpolation
    ups = [layer for layer in model.layers if layer.__class__.__name__ == "UpSampling2D"]
    assert [u.size for u in ups] == [(2, 2), (2, 2), (8, 8)]
    assert {u.interpolation for u in ups} == {"nearest" if decoder == "upsample" else "bilinear"}


def test_unknown_interpolation_is_a_clear_error():
    with pytest.raises(ValueError, match="decoder.interpolation: expected one of"):
        build_model(backbones.small_cnn, partial(decoders.upsample, interpolation="cubic"), 16, 1, 8)


def test_unknown_target_transform_names_its_config_key():
    with pytest.raises(ValueError, match="target.transform: expected one of"):
        build_model(backbones.small_cnn, decoders.upsample, 16, 1, 8, output_transform="furlong")


def test_decoder_geometry_names_p0s_last_transposed_convolution():
    assert geometry.last_transposed("transpose", 32, 3, 3) == (3, 8)  # P0 on ResNet50
    assert geometry.reached_cells(3, 8) == 9  # of every 64 output cells
    assert geometry.last_transposed("transpose", 8, 3, 3) == (3, 2) and geometry.reached_cells(3, 2) == 4
    assert geometry.last_transposed("upsample", 32, 2, 3) is None


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


@pytest.mark.parametrize("decoder", ["bilinear", "subpixel"])
@pytest.mark.parametrize("attention", ["none", "self_attention"])
@pytest.mark.parametrize("target", ["angstrom", "log"])
def test_beyond_variants_build_and_keep_the_output_shape(decoder, attention, target):
    cfg = compose_config(f"decoder={decoder}", f"attention={attention}", f"target={target}", "backbone=small_cnn")
    model = build_model(
        instantiate(cfg.backbone.build),
        instantiate(cfg.decoder),
        32,
        1,
        cfg.backbone.output_stride,
        0.3,
        neck=instantiate(cfg.attention),
        output_transform=cfg.target.transform,
    )
    assert model.output.shape == (None, 32, 32, 1)
    import numpy as np

    out = model.predict(np.zeros((1, 32, 32, 1), np.float32), verbose=0)
    assert np.isfinite(out).all() and (target != "log" or (out > 0).all())


def test_icnr_starts_subpixel_as_nearest_neighbour_upsampling():
    import keras
    import numpy as np

    inputs = keras.Input((5, 5, 3))
    x = keras.layers.Conv2D(2 * 4, 3, padding="same", kernel_initializer=decoders.ICNR(2, seed=0))(inputs)
    model = keras.Model(inputs, decoders.DepthToSpace(2)(x))
    out = model.predict(np.random.default_rng(0).normal(size=(1, 5, 5, 3)).astype("float32"), verbose=0)[0]
    blocks = out.reshape(5, 2, 5, 2, 2)
    assert np.abs(blocks - blocks[:, :1, :, :1, :]).max() < 1e-5  # every 2×2 block is constant
    assert np.abs(out).max() > 0


def test_mobilenet_backbone_builds_with_one_channel():
    cfg = compose_config("backbone=mobilenet_v2")
    model = build_model(instantiate(cfg.backbone.build), instantiate(cfg.decoder), 64, 1, cfg.backbone.output_stride)
    assert model.output.shape == (None, 64, 64, 1)


def test_models_with_custom_layers_save_and_load(tmp_path):
    import keras
    import numpy as np

    cfg = compose_config("decoder=subpixel", "attention=self_attention", "target=log", "backbone=small_cnn")
    model = build_model(
        instantiate(cfg.backbone.build),
        instantiate(cfg.decoder),
        32,
        1,
        cfg.backbone.output_stride,
        0.0,
        neck=instantiate(cfg.attention),
        output_transform=cfg.target.transform,
    )
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    x = np.random.default_rng(0).normal(size=(1, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5)
