"""Every config group option composes, and the original report's experiments pick what it used."""
from __future__ import annotations

import pytest

from tests.compose import compose_config, resolved
from tests.conftest import CONF

GROUPS = {
    "backbone": ["resnet50", "small_cnn", "mobilenet_v2"],
    "decoder": ["transpose", "upsample", "bilinear", "subpixel"],
    "attention": ["none", "self_attention"],
    "target": ["angstrom", "nanometre", "log"],
    "dropout": ["none", "original", "seed"],  # seed: old name of original
    "optimizer": ["adam", "adam_original", "adam_seed", "sgd", "adamw"],  # adam_seed: old name of adam_original
    "loss": ["mse", "huber", "log_mse"],
    "data": ["embedded", "proteinnet", "structures"],
    "features": ["relpos", "sequence", "pssm"],
    "trainer": ["default"],
    "tracking": ["mlflow"],
}


def test_group_folders_match_the_tested_options():
    for group, options in GROUPS.items():
        on_disk = sorted(p.stem for p in (CONF / group).glob("*.yaml"))
        assert on_disk == sorted(options), group


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_option_composes_and_resolves(group, option):
    extra = ["data.path=some/folder"] if group == "data" and option != "embedded" else []
    cfg = compose_config(f"{group}={option}", *extra)
    assert cfg.hydra.runtime.choices[group] == option
    resolved(cfg)  # no dangling interpolation


def test_dropout_options_set_a_numeric_rate():
    assert compose_config("dropout=none").dropout.rate == 0.0
    assert compose_config("dropout=original").dropout.rate == 0.3
    assert compose_config("dropout.rate=0.15").dropout.rate == 0.15


@pytest.mark.parametrize("old,new", [("dropout=seed", "dropout=original"), ("optimizer=adam_seed", "optimizer=adam_original")])
def test_old_option_names_compose_the_same_config(old, new):
    assert resolved(compose_config(old)) == resolved(compose_config(new))


def test_bilinear_decoder_is_the_upsample_decoder_with_bilinear_interpolation():
    upsample, bilinear = resolved(compose_config("decoder=upsample")), resolved(compose_config("decoder=bilinear"))
    assert upsample["decoder"]["interpolation"] == "nearest"
    assert bilinear["decoder"] == {**upsample["decoder"], "interpolation": "bilinear"}


@pytest.mark.parametrize("experiment,decoder,dropout", [("p0", "transpose", "none"), ("p1", "upsample", "original")])
def test_original_experiments(experiment, decoder, dropout):
    cfg = compose_config(f"experiment={experiment}")
    choices = cfg.hydra.runtime.choices
    assert (choices.backbone, choices.decoder, choices.dropout) == ("resnet50", decoder, dropout)
    assert cfg.optimizer._target_ == "keras.optimizers.Adam" and cfg.optimizer.learning_rate == 1e-6
    assert (cfg.trainer.epochs, cfg.trainer.batch_size, cfg.data.crop_size) == (5, 10, 256)


def test_study_sweeps_decoder_by_dropout_by_three_seeds():
    cfg = compose_config("study=p0_vs_p1")
    params = cfg.hydra.sweeper.params
    assert params.decoder == "transpose,upsample" and params.dropout == "none,original"
    assert len(str(params.seed).split(",")) >= 3
    assert cfg.hydra.runtime.choices.backbone == "resnet50"
    assert cfg.tracking.experiment == "p0_vs_p1" and cfg.study_name == "p0_vs_p1"
    published = cfg.report.original  # the original report's numbers, printed by the report
    assert [m.name for m in published.models] == ["P0", "P1"] and published.crop_size == 256


def test_studies_share_one_training_budget():
    """study/_base.yaml: both studies train ResNet50 at crop 64, Adam 1e-3, ≤ 10 epochs."""
    def budget(study):
        cfg = resolved(compose_config(f"study={study}"))
        return {k: cfg[k] for k in ("backbone", "data", "trainer", "optimizer")}

    assert budget("p0_vs_p1") == budget("beyond")
    cfg = compose_config("study=beyond")
    assert (cfg.data.crop_size, cfg.trainer.epochs, cfg.optimizer.learning_rate) == (64, 10, 1e-3)
    assert "report" not in cfg  # no published numbers to print beside the beyond study


def test_smoke_shrinks_any_run():
    cfg = compose_config("debug=smoke")
    assert cfg.hydra.runtime.choices.backbone == "small_cnn"
    assert cfg.trainer.epochs == 1 and cfg.data.crop_size <= 32
    assert all(v is not None and v <= 16 for v in cfg.data.limit.values())


def test_tracking_store_is_absolute_and_beside_the_project():
    composed = compose_config()
    cfg = resolved(composed)
    uri, artifacts = cfg["tracking"]["uri"], cfg["tracking"]["artifact_root"]
    assert uri == f"sqlite:///{CONF.parent}/mlflow.db"
    assert artifacts == f"{CONF.parent}/mlartifacts"
    assert composed.hydra.job.chdir is False


def test_user_data_paths_resolve_against_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = resolved(compose_config("data=structures", "data.path=pdbs"))
    assert cfg["data"]["source"]["path"] == str(tmp_path / "pdbs")


def test_feature_channels_follow_the_chosen_features():
    from hydra.utils import instantiate

    channels = {opt: instantiate(compose_config(f"features={opt}").features).channels for opt in GROUPS["features"]}
    assert channels == {"relpos": 1, "sequence": 43, "pssm": 83}


def test_beyond_study_composes_every_variant():
    cfg = compose_config("study=beyond")
    variants = str(cfg.hydra.sweeper.params.variant).split(",")
    assert sorted(variants) == sorted(p.stem for p in (CONF / "variant").glob("*.yaml"))
    assert len(str(cfg.hydra.sweeper.params.seed).split(",")) >= 3
    for v in variants:
        composed = compose_config("study=beyond", f"variant={v}")
        resolved(composed)
        assert composed.trainer.epochs == 10 and composed.data.crop_size == 64  # P1's budget
    assert compose_config("study=beyond", "variant=mobilenet").hydra.runtime.choices.backbone == "mobilenet_v2"
    from hydra.utils import instantiate

    for v in ("small_cnn", "mobilenet"):  # the study's BatchNorm setting reaches every backbone
        cfg = compose_config("study=beyond", f"variant={v}")
        body = instantiate(cfg.backbone.build)((64, 64, 1), output_stride=cfg.backbone.output_stride)
        bn = [layer.momentum for layer in body.layers if layer.__class__.__name__ == "BatchNormalization"]
        assert bn and set(bn) == {0.9}
    assert compose_config("study=beyond", "variant=p1").hydra.runtime.choices.backbone == "resnet50"


@pytest.mark.parametrize("variant", ["attention", "bilinear", "huber", "log_loss", "log_target", "mobilenet",
                                     "sequence", "small_cnn", "subpixel"])
def test_variants_start_from_p1_and_change_one_group(variant):
    p1 = compose_config("variant=p1").hydra.runtime.choices
    choices = compose_config(f"variant={variant}").hydra.runtime.choices
    changed = {g for g in ("backbone", "decoder", "dropout", "attention", "loss", "target", "features")
               if choices[g] != p1[g]}
    assert len(changed) == 1 and choices.dropout == "original", changed
