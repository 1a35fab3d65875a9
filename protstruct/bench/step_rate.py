"""Training step rate of the original report's models: P0/P1 × precision × crop, on random data.

    python -m protstruct.bench.step_rate [--crops 256] [--precisions float32,mixed_float16] [--out F]

Backend-agnostic Keras (TensorFlow here; also runs under KERAS_BACKEND=jax on a GPU machine that
has JAX but no TensorFlow). Each figure is the median of ``--repeats`` timed blocks of ``--steps``
compiled train steps after a warm-up block, with min and max.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import keras
import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from protstruct import config
from protstruct.models.model import model_from_config
from protstruct.train.losses import masked_mse

IN_CHANNELS = 1  # the bench feeds the relative-position matrix (features=relpos), one channel


def original_config(variant: str, crop: int, backbone: str = "resnet50") -> DictConfig:
    """The project's config for the original report's P0 or P1 (``experiment=p0`` / ``p1``, as
    ``python run.py`` composes it) on ``backbone`` at crop ``crop``."""
    overrides = [f"experiment={variant.lower()}", f"backbone={backbone}", f"data.crop_size={crop}"]
    with initialize_config_dir(config_dir=str(config.project_root() / "conf"), version_base="1.3"):
        return compose("config", overrides=overrides)


def original_model(variant: str, crop: int, backbone: str = "resnet50") -> keras.Model:
    """The original report's P0 or P1 (decoder, dropout) on ``backbone``, built from the project's
    config as a training job builds it, with a one-channel input."""
    cfg = original_config(variant, crop, backbone)
    return model_from_config(cfg, IN_CHANNELS)


def _sync(value):
    """Wait for the device: fetch a scalar result to the host."""
    return float(np.asarray(value))


def _random_batch(crop: int, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Relative-position inputs and random distances (3–60 Å, every pair observed)."""
    rng = np.random.default_rng(seed)
    idx = np.arange(crop, dtype=np.float32)
    x = np.broadcast_to(np.abs(idx[:, None] - idx[None, :])[None, ..., None], (batch, crop, crop, 1)).copy()
    y = np.stack([rng.uniform(3, 60, (batch, crop, crop)), np.ones((batch, crop, crop))], -1).astype(np.float32)
    return x, y


def measure(
    variant: str,
    crop: int,
    precision: str,
    batch: int,
    steps: int,
    repeats: int,
    seed: int = 0,
    jit_compile="auto",
    backbone: str = "resnet50",
):
    """Seconds per compiled train step of P0 or P1 (``variant``) at ``crop`` and ``precision``
    (a Keras dtype policy), on one random batch: the median, min and max of ``repeats`` blocks of
    ``steps`` steps after a warm-up."""
    keras.mixed_precision.set_global_policy(precision)
    try:
        keras.utils.set_random_seed(seed)
        model = original_model(variant, crop, backbone)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=masked_mse, jit_compile=jit_compile)
        x, y = _random_batch(crop, batch, seed)
        for _ in range(max(2, steps // 2)):  # warm-up: compile, autotune
            loss = model.train_on_batch(x, y)
        _sync(loss)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(steps):
                loss = model.train_on_batch(x, y)
            _sync(loss)
            times.append((time.perf_counter() - start) / steps)
    finally:
        keras.backend.clear_session()
        keras.mixed_precision.set_global_policy("float32")
    med = statistics.median(times)
    return {
        "variant": variant,
        "crop": crop,
        "precision": precision,
        "batch": batch,
        "params": model.count_params(),
        "step_s_median": med,
        "step_s_min": min(times),
        "step_s_max": max(times),
        "samples_per_s": batch / med,
        "final_loss": float(np.asarray(loss)),
    }


def device_name() -> str:
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return f"jax {jax.__version__}: {jax.devices()[0].device_kind}"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"tensorflow {tf.__version__}: " + (
        tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
        if gpus
        else f"CPU ({platform.processor() or platform.machine()})"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crops", default="256")
    parser.add_argument("--precisions", default="float32,mixed_float16")
    parser.add_argument("--variants", default="P0,P1")
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    info = {"device": device_name(), "keras": keras.__version__, "backend": keras.backend.backend()}
    print(json.dumps(info), flush=True)
    results = []
    for crop in map(int, args.crops.split(",")):
        for variant in args.variants.split(","):
            for precision in args.precisions.split(","):
                r = measure(variant, crop, precision, args.batch, args.steps, args.repeats)
                results.append(r)
                print(json.dumps(r), flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({**info, "results": results}, fh, indent=1)


if __name__ == "__main__":
    main()
