"""Backbone + decoder → one functional Keras model."""

from __future__ import annotations

import keras

OUTPUT_TRANSFORMS = ("angstrom", "nanometre", "log")


@keras.saving.register_keras_serializable("protstruct")
class ToAngstrom(keras.layers.Layer):
    """Target normalisation: the head predicts nm or log(Å); this maps it back to Å, so losses
    and metrics stay in Å and remain comparable across variants."""

    def __init__(self, transform: str = "angstrom", **kwargs):
        super().__init__(**kwargs)
        if transform not in OUTPUT_TRANSFORMS:
            raise ValueError(f"target.transform: expected one of {OUTPUT_TRANSFORMS}, got {transform!r}")
        self.transform = transform

    def call(self, x):
        if self.transform == "nanometre":
            return x * 10.0
        if self.transform == "log":
            return keras.ops.exp(keras.ops.minimum(x, 6.0))  # capped at e^6 ≈ 400 Å
        return x

    def get_config(self):
        return {**super().get_config(), "transform": self.transform}


def build_model(
    backbone,
    decoder,
    crop_size: int,
    in_channels: int,
    output_stride: int,
    dropout_rate: float = 0.0,
    name: str = "protein_structure_predictor",
    neck=None,
    output_transform: str = "angstrom",
) -> keras.Model:
    """``backbone(input_shape, output_stride=…)``, ``decoder(x, output_stride, dropout_rate)`` and
    the optional ``neck(x)`` (e.g. self-attention) are the partially-applied callables that Hydra
    builds from the backbone / decoder / attention groups."""
    inputs = keras.Input((crop_size, crop_size, in_channels), name="features")
    body = backbone((crop_size, crop_size, in_channels), output_stride=output_stride)
    features = body(inputs)
    if neck is not None:
        features = neck(features)
    distances = decoder(features, output_stride=output_stride, dropout_rate=dropout_rate)
    if output_transform != "angstrom":
        distances = ToAngstrom(output_transform, dtype="float32")(distances)
    return keras.Model(inputs, distances, name=name)


def model_from_config(cfg, in_channels: int) -> keras.Model:
    """:func:`build_model` from a composed protstruct config (its backbone, decoder, attention,
    dropout, target and ``data.crop_size`` groups): the one place a config becomes a model."""
    from hydra.utils import instantiate

    return build_model(
        instantiate(cfg.backbone.build),
        instantiate(cfg.decoder),
        int(cfg.data.crop_size),
        in_channels,
        int(cfg.backbone.output_stride),
        float(cfg.dropout.rate),
        neck=instantiate(cfg.attention),
        output_transform=str(cfg.target.transform),
    )
