"""Items 1, 2, 4 and 6: protstruct's runner against the seed's training loop, its input pipeline
against in-memory tensors, the cost of MLflow logging, and step time against crop size."""
from __future__ import annotations

import tempfile

import keras
import numpy as np
import tensorflow as tf

from protstruct.bench.timing import repeat
from protstruct.data import pipeline
from protstruct.data.features import RelativePosition
from protstruct.models import backbones, decoders
from protstruct.models.model import build_model
from protstruct.tracking import mlflow_store
from protstruct.train.callbacks import MlflowEpochLogger
from protstruct.train.losses import MaskedRMSE, masked_mse

VARIANTS = {"P0": (decoders.transpose, 0.0), "P1": (decoders.upsample, 0.3)}
BACKBONES = {"resnet50": (backbones.resnet50, 32), "small_cnn": (backbones.small_cnn, 8)}
BACKBONE = "resnet50"  # the benchmark's fixed model; --quick swaps in the small CNN


def make_model(variant: str, crop: int, seed: int = 0, backbone: str | None = None) -> keras.Model:
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    decoder, rate = VARIANTS[variant]
    body, stride = BACKBONES[backbone or BACKBONE]
    return build_model(body, decoder, crop, 1, stride, rate)


def fixed_batches(records, crop: int, batch: int, n: int, seed: int = 0):
    """The first n batches of the real training pipeline, as numpy (the same for every loop)."""
    ds = pipeline.train_dataset(records, crop, batch, RelativePosition(), seed)
    return [(x.numpy(), y.numpy()) for x, y in ds.repeat().take(n)]


def _compiled(model):
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=masked_mse, metrics=[MaskedRMSE()])
    return model


def seed_loop(model, batches, val_batches, validate_every_batch: bool):
    """The seed's loop: eager GradientTape per batch, eager model calls, and (as the seed did) a
    full validation pass after every batch. Returns the first step's loss."""
    optimizer = keras.optimizers.Adam(1e-3)
    first = None
    for x, y in batches:
        with tf.GradientTape() as tape:
            loss = masked_mse(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        first = float(loss) if first is None else first
        if validate_every_batch:
            for vx, vy in val_batches:
                float(masked_mse(vy, model(vx, training=False)))
    return first


def _first_step_losses(variant: str, crop: int, batch) -> dict:
    """Both loops from the same weights on the same batch. Dropout is switched off for this check
    only: its random masks differ between an eager call and a compiled step."""
    model = make_model(variant, crop)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    initial = model.get_weights()
    seed_first = seed_loop(model, [batch], [], False)
    model.set_weights(initial)
    runner_first = float(_compiled(model).train_on_batch(*batch, return_dict=True)["loss"])
    return {"seed_loop": seed_first, "runner": runner_first, "abs_diff": abs(seed_first - runner_first)}


def runner_vs_seed(records, val_records, variant: str, crop: int, batch: int, steps: int, repeats: int):
    """Samples/s of one epoch of ``steps`` batches: the seed's loop (with and without its per-batch
    validation), the bare compiled step (train_on_batch), and protstruct's runner (``fit``)."""
    batches = fixed_batches(records, crop, batch, steps)
    val = list(pipeline.eval_dataset(val_records, crop, batch, RelativePosition()).as_numpy_iterator())
    model = make_model(variant, crop)
    initial = model.get_weights()
    out = {"variant": variant, "crop": crop, "batch": batch, "steps": steps}

    def seed(validate):
        def go():
            model.set_weights(initial)
            seed_loop(model, batches, val, validate)
            return steps * batch
        return go

    out["seed_loop_with_per_batch_validation"] = repeat(seed(True), repeats)
    out["seed_loop"] = repeat(seed(False), repeats)
    _compiled(model)
    data = tf.data.Dataset.from_tensor_slices(
        (np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]))).batch(batch)

    def bare():
        model.set_weights(initial)
        for x, y in batches:
            logs = model.train_on_batch(x, y, return_dict=True)
        float(logs["loss"])
        return steps * batch

    def runner():
        model.set_weights(initial)
        model.fit(data, epochs=1, verbose=0, shuffle=False)
        return steps * batch

    out["bare_compiled_step"] = repeat(bare, repeats)
    out["runner"] = repeat(runner, repeats)
    out["first_step_loss"] = _first_step_losses(variant, crop, batches[0])
    r = out["runner"]["samples_per_s"]
    out["runner_vs_seed_loop"] = r / out["seed_loop"]["samples_per_s"]
    out["runner_vs_seed_loop_with_validation"] = r / out["seed_loop_with_per_batch_validation"]["samples_per_s"]
    out["runner_vs_bare_compiled_step"] = r / out["bare_compiled_step"]["samples_per_s"]
    return out


def pipeline_efficiency(records, variant: str, crop: int, batch: int, repeats: int):
    """Runner on the real pipeline (fresh random crops every epoch) vs on in-memory tensors."""
    model = _compiled(make_model(variant, crop))
    real = pipeline.train_dataset(records, crop, batch, RelativePosition(), seed=0)
    one_epoch = list(real.as_numpy_iterator())
    x, y = (np.concatenate([b[k] for b in one_epoch]) for k in (0, 1))
    memory = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).cache()
    n = len(records)

    def epoch(ds):
        return lambda: (model.fit(ds, epochs=1, verbose=0, shuffle=False), n)[1]

    results = {"real_pipeline": [], "in_memory": []}
    epoch(real)(), epoch(memory)()  # warm-up both
    for _ in range(repeats):  # interleaved, so drift hits both alike
        results["real_pipeline"].append(repeat(epoch(real), 1, warmup=0)["median_s"])
        results["in_memory"].append(repeat(epoch(memory), 1, warmup=0)["median_s"])
    from protstruct.bench.timing import summary

    out = {k: summary(v, n) for k, v in results.items()}
    out["efficiency"] = out["real_pipeline"]["samples_per_s"] / out["in_memory"]["samples_per_s"]
    out.update(variant=variant, crop=crop, batch=batch)
    return out


class _StepLogger(keras.callbacks.Callback):
    def __init__(self, run_logger, every: int, synchronous: bool):
        super().__init__()
        self.run_logger, self.every, self.synchronous = run_logger, every, synchronous
        self.step = 0

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % self.every == 0:
            from mlflow.entities import Metric

            self.run_logger.client.log_batch(self.run_logger.run_id, metrics=[
                Metric("train/step_loss", float(logs["loss"]), 0, self.step)], synchronous=self.synchronous)


def tracking_overhead(records, val_records, variant: str, crop: int, batch: int, repeats: int):
    """Epoch time with MLflow logging off / per epoch / every 5 steps (sync and async)."""
    model = _compiled(make_model(variant, crop))
    train = pipeline.train_dataset(records, crop, batch, RelativePosition(), seed=0)
    val = pipeline.eval_dataset(val_records, crop, batch, RelativePosition())
    with tempfile.TemporaryDirectory() as tmp:
        client = mlflow_store.client_for(f"sqlite:///{tmp}/bench.db")
        exp = mlflow_store.ensure_experiment(client, "bench", f"{tmp}/artifacts")
        run = mlflow_store.RunLogger.start(client, exp, "tracking-overhead")
        modes = {
            "off": lambda: [],
            "off_again": lambda: [],  # a second 'off' group: the noise floor
            "per_epoch_sync": lambda: [MlflowEpochLogger(run)],
            "every_5_steps_sync": lambda: [_StepLogger(run, 5, True)],
            "every_5_steps_async": lambda: [_StepLogger(run, 5, False)],
        }
        times = {m: [] for m in modes}
        model.fit(train, validation_data=val, epochs=1, verbose=0)  # warm-up
        for _ in range(repeats):
            for mode, callbacks in modes.items():  # interleaved on/off
                t = repeat(lambda: (model.fit(train, validation_data=val, epochs=1, verbose=0,
                                              callbacks=callbacks()), len(records))[1], 1, warmup=0)
                times[mode].append(t["median_s"])
        run.finish()
    from protstruct.bench.timing import summary

    out = {m: summary(t) for m, t in times.items()}
    base = out["off"]["median_s"]
    out["noise_floor"] = abs(out["off_again"]["median_s"] / base - 1.0)
    out["overhead"] = {m: out[m]["median_s"] / base - 1.0 for m in modes if not m.startswith("off")}
    out.update(variant=variant, crop=crop, batch=batch)
    return out
