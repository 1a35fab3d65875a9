"""Every config group option composes — the model/data/training groups, every ``hydra/launcher``
(the project's presets and the plugins' own the README names) and every ``hparams_search`` —, and
the original report's experiments pick what it used. Launchers and sweepers are also instantiated
(their constructors check their settings); none of this contacts a cluster."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

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


# hydra/launcher: conf/hydra/launcher/*.yaml (the project's presets) plus the plugins' options the
# README uses; each with the launcher class it selects
PROJECT_LAUNCHERS = ["ray_cluster", "slurm"]
LAUNCHERS = {
    "basic": "hydra._internal.core_plugins.basic_launcher.BasicLauncher",
    "joblib": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
    "submitit_local": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher",
    "slurm": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
    "ray_cluster": "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher",
}
HPARAMS_SEARCH = {"optuna": "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"}


def test_launcher_and_search_folders_match_the_tested_options():
    assert sorted(p.stem for p in (CONF / "hydra" / "launcher").glob("*.yaml")) == PROJECT_LAUNCHERS
    assert set(PROJECT_LAUNCHERS) <= set(LAUNCHERS)
    assert sorted(p.stem for p in (CONF / "hparams_search").glob("*.yaml")) == sorted(HPARAMS_SEARCH)


def set_up_sweeper(cfg):
    """The sweeper and its launcher, instantiated and set up as ``python run.py -m`` does (through
    Hydra's plugin registry: their constructors check their settings); nothing is launched."""
    from hydra.core.plugins import Plugins
    from hydra.types import HydraContext

    return Plugins.instance().instantiate_sweeper(
        hydra_context=HydraContext(config_loader=None, callbacks=None), task_function=lambda job: None, config=cfg
    )


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_every_launcher_composes_and_instantiates_without_a_cluster(launcher):
    for overrides in ([], ["study=p0_vs_p1"], ["hparams_search=optuna"]):  # with a study's or a search's sweeper
        cfg = compose_config(f"hydra/launcher={launcher}", *overrides)
        assert cfg.hydra.runtime.choices["hydra/launcher"] == launcher
        assert cfg.hydra.launcher._target_ == LAUNCHERS[launcher]
        resolved(cfg)
        sweeper = set_up_sweeper(cfg)
        sweeper = getattr(sweeper, "sweeper", sweeper)  # OptunaSweeper wraps its implementation
        launched_by = type(sweeper.launcher)
        assert f"{launched_by.__module__}.{launched_by.__name__}" == LAUNCHERS[launcher]


def test_the_launcher_presets_hold_what_the_readme_says_and_take_its_overrides():
    slurm = compose_config("hydra/launcher=slurm").hydra.launcher  # 1 GPU, 8 CPUs, 32 GB, 2 h per job
    assert (slurm.gpus_per_node, slurm.cpus_per_task, slurm.mem_gb, slurm.timeout_min) == (1, 8, 32, 120)
    slurm = compose_config(
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.cpus_per_task=4",
        "hydra.launcher.gpus_per_node=null",
        "hydra.launcher.mem_gb=16",
        "hydra.launcher.timeout_min=60",
    ).hydra.launcher
    assert (slurm.partition, slurm.cpus_per_task, slurm.gpus_per_node, slurm.mem_gb, slurm.timeout_min) == (
        "gpu",
        4,
        None,
        16,
        60,
    )
    ray = compose_config("hydra/launcher=ray_cluster", "hydra.launcher.ray.init.address=HEAD:6379").hydra.launcher.ray
    assert ray.init.address == "HEAD:6379" and ray.remote.num_cpus == 4 and ray.remote.num_gpus == 1
    assert "object_store_memory" in ray.init and ray.init.object_store_memory is None  # ray.init rejects the default
    assert compose_config("hydra/launcher=joblib", "hydra.launcher.n_jobs=2").hydra.launcher.n_jobs == 2


@pytest.mark.parametrize("search", sorted(HPARAMS_SEARCH))
def test_every_hparams_search_composes_and_its_search_space_parses(search):
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    cfg = compose_config(f"hparams_search={search}", "seed=7", "hydra.sweeper.n_trials=3")
    assert cfg.hydra.runtime.choices["hydra/sweeper"] == search
    assert cfg.hydra.sweeper._target_ == HPARAMS_SEARCH[search]
    sweeper = cfg.hydra.sweeper
    assert sweeper.n_trials == 3 and sweeper.direction == "minimize" and sweeper.sampler.seed == 7
    assert type(set_up_sweeper(cfg)).__name__ == HPARAMS_SEARCH[search].rsplit(".", 1)[1]
    space, fixed = create_params_from_overrides([f"{k}={v}" for k, v in sweeper.params.items()])
    assert not fixed and sorted(space) == ["decoder", "dropout.rate", "optimizer.learning_rate"]
    for key, dist in space.items():  # each searched value is a valid override of the composed config
        values = list(dist.choices) if hasattr(dist, "choices") else [dist.low, dist.high]
        for value in values:
            job = compose_config(f"hparams_search={search}", f"{key}={value}")
            resolved(job)
            if key == "decoder":
                assert job.hydra.runtime.choices.decoder == value
            else:
                assert OmegaConf.select(job, key) == value
    assert space["optimizer.learning_rate"].__class__.__name__ == "LogUniformDistribution"


def test_dropout_options_set_a_numeric_rate():
    assert compose_config("dropout=none").dropout.rate == 0.0
    assert compose_config("dropout=original").dropout.rate == 0.3
    assert compose_config("dropout.rate=0.15").dropout.rate == 0.15


@pytest.mark.parametrize(
    "old,new", [("dropout=seed", "dropout=original"), ("optimizer=adam_seed", "optimizer=adam_original")]
)
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


@pytest.mark.parametrize(
    "variant",
    ["attention", "bilinear", "huber", "log_loss", "log_target", "mobilenet", "sequence", "small_cnn", "subpixel"],
)
def test_variants_start_from_p1_and_change_one_group(variant):
    p1 = compose_config("variant=p1").hydra.runtime.choices
    choices = compose_config(f"variant={variant}").hydra.runtime.choices
    changed = {
        g for g in ("backbone", "decoder", "dropout", "attention", "loss", "target", "features") if choices[g] != p1[g]
    }
    assert len(changed) == 1 and choices.dropout == "original", changed
