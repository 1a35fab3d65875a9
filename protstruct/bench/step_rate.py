"""Training step rate of the seed's models: P0/P1 × precision × crop, on random data.

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

from protstruct.models import backbones, decoders
from protstruct.models.model import build_model
from protstruct.train.losses import masked_mse

VARIANTS = {"P0": (decoders.transpose, 0.0), "P1": (decoders.upsample, 0.3)}
BACKBONES = {"resnet50": (backbones.resnet50, 32), "small_cnn": (backbones.small_cnn, 8)}


def seed_model(variant: str, crop: int, backbone: str = "resnet50") -> keras.Model:
    """The seed's P0 or P1 (decoder and dropout) on the given backbone, 1-channel input."""
    decoder, rate = VARIANTS[variant]
    body, stride = BACKBONES[backbone]
    return build_model(body, decoder, crop, 1, stride, rate)


def _sync(value):
    """Wait for the device: fetch a scalar result to the host."""
    return float(np.asarray(value))


def measure(variant: str, crop: int, precision: str, batch: int, steps: int, repeats: int, seed: int = 0,
            jit_compile="auto", backbone: str = "resnet50"):
    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(seed)
    model = seed_model(variant, crop, backbone)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=masked_mse, jit_compile=jit_compile)
    rng = np.random.default_rng(seed)
    idx = np.arange(crop, dtype=np.float32)
    x = np.broadcast_to(np.abs(idx[:, None] - idx[None, :])[None, ..., None], (batch, crop, crop, 1)).copy()
    y = np.stack([rng.uniform(3, 60, (batch, crop, crop)), np.ones((batch, crop, crop))], -1).astype(np.float32)
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
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("float32")
    med = statistics.median(times)
    return {"variant": variant, "crop": crop, "precision": precision, "batch": batch,
            "params": model.count_params(), "step_s_median": med, "step_s_min": min(times),
            "step_s_max": max(times), "samples_per_s": batch / med, "final_loss": float(np.asarray(loss))}


def device_name() -> str:
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return f"jax {jax.__version__}: {jax.devices()[0].device_kind}"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"tensorflow {tf.__version__}: " + (tf.config.experimental.get_device_details(gpus[0]).get(
        "device_name", "GPU") if gpus else f"CPU ({platform.processor() or platform.machine()})")


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
