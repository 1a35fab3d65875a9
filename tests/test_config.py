"""Every config group option composes, and the seed experiments pick what the seed used."""
from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import protstruct.config  # noqa: F401
from tests.conftest import CONF

GROUPS = {
    "backbone": ["resnet50", "small_cnn", "mobilenet_v2"],
    "decoder": ["transpose", "upsample", "bilinear", "subpixel"],
    "attention": ["none", "self_attention"],
    "target": ["angstrom", "nanometre", "log"],
    "dropout": ["none", "seed"],
    "optimizer": ["adam", "adam_seed", "sgd", "adamw"],
    "loss": ["mse", "huber", "log_mse"],
    "data": ["embedded", "proteinnet", "structures"],
    "features": ["relpos", "sequence", "pssm"],
    "trainer": ["default"],
    "tracking": ["mlflow"],
}


def _compose(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


def _resolved(cfg) -> dict:
    """The job's config, resolved (Hydra's own node needs a running job to resolve)."""
    return OmegaConf.to_container(OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"]), resolve=True)


def test_group_folders_match_the_tested_options():
    for group, options in GROUPS.items():
        on_disk = sorted(p.stem for p in (CONF / group).glob("*.yaml"))
        assert on_disk == sorted(options), group


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_option_composes_and_resolves(group, option):
    extra = ["data.path=some/folder"] if group == "data" and option != "embedded" else []
    cfg = _compose(f"{group}={option}", *extra)
    assert cfg.hydra.runtime.choices[group] == option
    _resolved(cfg)  # no dangling interpolation


def test_dropout_options_set_a_numeric_rate():
    assert _compose("dropout=none").dropout.rate == 0.0
    assert _compose("dropout=seed").dropout.rate == 0.3
    assert _compose("dropout.rate=0.15").dropout.rate == 0.15


@pytest.mark.parametrize("experiment,decoder,dropout", [("p0", "transpose", "none"), ("p1", "upsample", "seed")])
def test_seed_experiments(experiment, decoder, dropout):
    cfg = _compose(f"experiment={experiment}")
    choices = cfg.hydra.runtime.choices
    assert (choices.backbone, choices.decoder, choices.dropout) == ("resnet50", decoder, dropout)
    assert cfg.optimizer._target_ == "keras.optimizers.Adam" and cfg.optimizer.learning_rate == 1e-6
    assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.data.crop_size) == (5, 10, 256)


def test_study_sweeps_decoder_by_dropout_by_three_seeds():
    cfg = _compose("study=p0_vs_p1")
    params = cfg.hydra.sweeper.params
    assert params.decoder == "transpose,upsample" and params.dropout == "none,seed"
    assert len(str(params.seed).split(",")) >= 3
    assert cfg.hydra.runtime.choices.backbone == "resnet50"
    assert cfg.tracking.experiment == "p0_vs_p1" and cfg.study_name == "p0_vs_p1"


def test_smoke_shrinks_any_run():
    cfg = _compose("debug=smoke")
    assert cfg.hydra.runtime.choices.backbone == "small_cnn"
    assert cfg.trainer.epochs == 1 and cfg.data.crop_size <= 32
    assert all(v is not None and v <= 16 for v in cfg.data.limit.values())


def test_tracking_store_is_absolute_and_beside_the_project():
    composed = _compose()
    cfg = _resolved(composed)
    uri, artifacts = cfg["tracking"]["uri"], cfg["tracking"]["artifact_root"]
    assert uri == f"sqlite:///{CONF.parent}/mlflow.db"
    assert artifacts == f"{CONF.parent}/mlartifacts"
    assert composed.hydra.job.chdir is False


def test_user_data_paths_resolve_against_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _resolved(_compose("data=structures", "data.path=pdbs"))
    assert cfg["data"]["source"]["path"] == str(tmp_path / "pdbs")


def test_feature_channels_follow_the_chosen_features():
    from hydra.utils import instantiate

    channels = {opt: instantiate(_compose(f"features={opt}").features).channels for opt in GROUPS["features"]}
    assert channels == {"relpos": 1, "sequence": 43, "pssm": 83}


def test_beyond_study_composes_every_variant():
    cfg = _compose("study=beyond")
    variants = str(cfg.hydra.sweeper.params.variant).split(",")
    assert sorted(variants) == sorted(p.stem for p in (CONF / "variant").glob("*.yaml"))
    assert len(str(cfg.hydra.sweeper.params.seed).split(",")) >= 3
    for v in variants:
        composed = _compose("study=beyond", f"variant={v}")
        _resolved(composed)
        assert composed.trainer.epochs == 10 and composed.data.crop_size == 64  # P1's budget
    assert _compose("study=beyond", "variant=mobilenet").hydra.runtime.choices.backbone == "mobilenet_v2"
    from hydra.utils import instantiate

    for v in ("small_cnn", "mobilenet"):  # the study's BatchNorm setting reaches every backbone
        cfg = _compose("study=beyond", f"variant={v}")
        body = instantiate(cfg.backbone.build)((64, 64, 1), output_stride=cfg.backbone.output_stride)
        bn = [layer.momentum for layer in body.layers if layer.__class__.__name__ == "BatchNormalization"]
        assert bn and set(bn) == {0.9}
    assert _compose("study=beyond", "variant=p1").hydra.runtime.choices.backbone == "resnet50"
