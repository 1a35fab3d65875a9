"""Items 1, 2, 4 and 7: protstruct's runner against the original report's training loop, its input
pipeline against in-memory tensors, the cost of MLflow logging, and XLA against the TensorFlow
graph (item 6, step time against crop size, is :mod:`protstruct.bench.step_rate`).

Every measure takes the model as ``variant`` (P0 or P1) and ``backbone`` (a ``backbone=`` option)."""

from __future__ import annotations

import statistics
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
from mlflow.entities import Metric

from protstruct.bench import step_rate, timing
from protstruct.data import pipeline
from protstruct.data.features import RelativePosition
from protstruct.tracking import mlflow_store
from protstruct.train.callbacks import MlflowEpochLogger
from protstruct.train.losses import MaskedRMSE, masked_mse


def make_model(variant: str, backbone: str, crop: int, seed: int = 0) -> keras.Model:
    """A fresh P0 or P1 on ``backbone``, its weights drawn from ``seed``."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    return step_rate.original_model(variant, crop, backbone)


def fixed_batches(records, crop: int, batch: int, n: int, seed: int = 0):
    """The first n batches of the real training pipeline, as numpy (the same for every loop)."""
    ds = pipeline.train_dataset(records, crop, batch, RelativePosition(), seed)
    return [(x.numpy(), y.numpy()) for x, y in ds.repeat().take(n)]


def _in_memory(batches, batch: int):
    """numpy batches as one in-memory dataset, with protstruct's dataset options."""
    x, y = (np.concatenate([b[k] for b in batches]) for k in (0, 1))
    return pipeline.in_memory_dataset(x, y, batch)


def _compiled(model, jit_compile: bool = False):
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss=masked_mse, metrics=[MaskedRMSE()], jit_compile=jit_compile
    )
    return model


def original_loop(model, batches, val_batches, validate_every_batch: bool, optimizer=None):
    """The original report's loop: eager GradientTape per batch, eager model calls, and (as the
    original did) a full validation pass after every batch. Returns the first step's loss."""
    optimizer = optimizer or keras.optimizers.Adam(1e-3)
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


def _first_step_losses(variant: str, backbone: str, crop: int, batch) -> dict:
    """Both loops from the same weights on the same batch, with dropout off (its masks are random).

    The runner's step is compared twice. With Grappler's arithmetic optimizer off, the compiled
    step does the original loop's exact arithmetic, so the losses must agree bit for bit: the same
    weights, batch and loss. With every Grappler rewrite on, as in training, they differ only by
    its algebraic reordering of float32 sums (~2e-5 relative for P1 at crop 64)."""
    model = make_model(variant, backbone, crop)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    initial = model.get_weights()
    out = {"original_loop": original_loop(model, [batch], [], False)}
    configured = tf.config.optimizer.get_experimental_options().get("arithmetic_optimization", True)
    for name, arithmetic in (("runner_exact_arithmetic", False), ("runner", configured)):
        model.set_weights(initial)
        tf.config.optimizer.set_experimental_options({"arithmetic_optimization": arithmetic})
        try:  # compile() makes a fresh train function, optimized under the option just set
            out[name] = float(_compiled(model).train_on_batch(*batch, return_dict=True)["loss"])
        finally:
            tf.config.optimizer.set_experimental_options({"arithmetic_optimization": configured})
    for name in ("runner_exact_arithmetic", "runner"):
        diff = abs(out["original_loop"] - out[name])
        out[f"{name}_abs_diff"], out[f"{name}_rel_diff"] = diff, diff / abs(out["original_loop"])
    return out


def runner_vs_original(
    records, val_records, variant: str, backbone: str, crop: int, batch: int, steps: int, rounds: int
):
    """Samples/s of one epoch of ``steps`` batches: the original report's loop (with and without
    its per-batch validation), the bare compiled step (train_on_batch), and protstruct's runner
    (``fit`` on a dataset built by protstruct's pipeline module). Interleaved rounds, each from the
    same weights (reset outside the timed block)."""
    batches = fixed_batches(records, crop, batch, steps)
    val = list(pipeline.eval_dataset(val_records, crop, batch, RelativePosition()).as_numpy_iterator())
    model = make_model(variant, backbone, crop)
    initial = model.get_weights()
    data = _in_memory(batches, batch)
    samples = steps * batch

    original_optimizer = keras.optimizers.Adam(1e-3)  # one for the whole run, as in the original

    def original(validate):
        return lambda: (original_loop(model, batches, val, validate, original_optimizer), samples)[1]

    def bare():
        for x, y in batches:
            logs = model.train_on_batch(x, y, return_dict=True)
        float(logs["loss"])
        return samples

    def runner():
        model.fit(data, epochs=1, verbose=0, shuffle=False)
        return samples

    _compiled(model)  # the original loop brings its own optimizer and never reads the compiled one
    times = timing.interleaved(
        {
            "original_loop_with_per_batch_validation": original(True),
            "original_loop": original(False),
            "bare_compiled_step": bare,
            "runner": runner,
        },
        rounds,
        before=lambda: model.set_weights(initial),
    )
    out = {
        "variant": variant,
        "crop": crop,
        "batch": batch,
        "steps": steps,
        **times,
        "first_step_loss": _first_step_losses(variant, backbone, crop, batches[0]),
    }
    # seconds ratios: how many times faster the runner is (or, against the bare step, its share)
    out["runner_vs_original_loop"] = timing.paired_ratio(times["original_loop"], times["runner"])
    out["runner_vs_original_loop_with_validation"] = timing.paired_ratio(
        times["original_loop_with_per_batch_validation"], times["runner"]
    )
    out["runner_vs_bare_compiled_step"] = timing.paired_ratio(times["bare_compiled_step"], times["runner"])
    return out


def xla_vs_graph(records, variant: str, backbone: str, crop: int, batch: int, steps: int, rounds: int):
    """The runner's epoch with the train step as a TensorFlow graph (``trainer.jit_compile=false``,
    the default) and XLA-compiled (``true``): two copies of one model, same weights and batches,
    interleaved rounds."""
    batches = fixed_batches(records, crop, batch, steps)
    data = _in_memory(batches, batch)
    graph = _compiled(make_model(variant, backbone, crop), jit_compile=False)
    xla = _compiled(step_rate.original_model(variant, crop, backbone), jit_compile=True)  # same session
    initial = graph.get_weights()

    def epoch(model):
        return lambda: (model.fit(data, epochs=1, verbose=0, shuffle=False), steps * batch)[1]

    def reset():
        graph.set_weights(initial)
        xla.set_weights(initial)

    out = timing.interleaved({"graph": epoch(graph), "xla": epoch(xla)}, rounds, before=reset)
    out["xla_speedup"] = timing.paired_ratio(out["graph"], out["xla"])
    out.update(variant=variant, crop=crop, batch=batch, steps=steps)
    return out


def pipeline_efficiency(records, variant: str, backbone: str, crop: int, batch: int, rounds: int):
    """Runner on the real pipeline (fresh random crops every epoch) vs on in-memory tensors of the
    same shape, in interleaved epochs."""
    model = _compiled(make_model(variant, backbone, crop))
    real = pipeline.train_dataset(records, crop, batch, RelativePosition(), seed=0)
    memory = _in_memory(list(real.as_numpy_iterator()), batch).cache()

    def epoch(ds):
        return lambda: (model.fit(ds, epochs=1, verbose=0, shuffle=False), len(records))[1]

    out = timing.interleaved({"real_pipeline": epoch(real), "in_memory": epoch(memory)}, rounds)
    out["efficiency"] = timing.paired_ratio(out["in_memory"], out["real_pipeline"])
    out.update(variant=variant, crop=crop, batch=batch)
    return out


class _TimedEpochLogger(MlflowEpochLogger):
    """protstruct's per-epoch logger, adding up the seconds spent inside it."""

    def __init__(self, run_logger):
        super().__init__(run_logger)
        self.seconds = 0.0

    def on_epoch_end(self, epoch, logs=None):
        start = time.perf_counter()
        super().on_epoch_end(epoch, logs)
        self.seconds += time.perf_counter() - start


class _WithSystemMetrics(_TimedEpochLogger):
    """Per-epoch logging plus MLflow's system-metrics sampler, as jobs run it (here at 1 s, ten
    times the default rate, as an upper bound); starting and stopping the sampler is timed too."""

    def __init__(self, run_logger, interval: float):
        super().__init__(run_logger)
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        self.monitor = SystemMetricsMonitor(
            run_logger.run_id,
            sampling_interval=interval,
            resume_logging=True,
            tracking_uri=run_logger.client.tracking_uri,
        )

    def on_train_begin(self, logs=None):
        start = time.perf_counter()
        self.monitor.start()
        self.seconds += time.perf_counter() - start

    def on_train_end(self, logs=None):
        start = time.perf_counter()
        self.monitor.finish()
        self.seconds += time.perf_counter() - start


class _StepLogger(keras.callbacks.Callback):
    """Logs the loss every ``every`` steps, synchronously or through MLflow's async queue (waited
    for at the end of the epoch, so the timed block holds the whole cost)."""

    def __init__(self, run_logger, every: int, synchronous: bool):
        super().__init__()
        self.run_logger, self.every, self.synchronous = run_logger, every, synchronous
        self.step, self.seconds = 0, 0.0
        self.pending: list = []  # the async log calls' futures (None for a synchronous call)

    def on_train_batch_end(self, batch, logs=None):
        start = time.perf_counter()
        self.step += 1
        if self.step % self.every == 0:
            pending = self.run_logger.client.log_batch(
                self.run_logger.run_id,
                metrics=[Metric("train/step_loss", float(logs["loss"]), 0, self.step)],
                synchronous=self.synchronous,
            )
            self.pending.append(pending)
        self.seconds += time.perf_counter() - start

    def on_epoch_end(self, epoch, logs=None):
        for pending in filter(None, self.pending):
            pending.wait()


def tracking_overhead(records, val_records, variant: str, backbone: str, crop: int, batch: int, rounds: int):
    """Epoch time with MLflow logging off / per epoch / every 5 steps (sync and async), interleaved.
    Two measures: the wall-clock ratio to 'off' in the same round (noise floor: 'off' against a
    second 'off'), and the seconds spent inside the logging callbacks, which is what synchronous
    logging adds to the hot path, free of the machine's drift."""
    model = _compiled(make_model(variant, backbone, crop))
    train = pipeline.train_dataset(records, crop, batch, RelativePosition(), seed=0)
    val = pipeline.eval_dataset(val_records, crop, batch, RelativePosition())
    with tempfile.TemporaryDirectory() as tmp:
        client = mlflow_store.client_for(f"sqlite:///{tmp}/bench.db")
        exp = mlflow_store.ensure_experiment(client, "bench", f"{tmp}/artifacts")
        run = mlflow_store.RunLogger.start(client, exp, "tracking-overhead")
        modes = {
            "off": lambda: None,
            "off_again": lambda: None,
            "per_epoch_sync": lambda: _TimedEpochLogger(run),
            "per_epoch_sync_system_metrics_1s": lambda: _WithSystemMetrics(run, 1.0),
            "every_5_steps_sync": lambda: _StepLogger(run, 5, True),
            "every_5_steps_async": lambda: _StepLogger(run, 5, False),
        }
        inside: dict[str, list[float]] = {mode: [] for mode in modes}

        def epoch(mode):
            def go():
                callback = modes[mode]()
                model.fit(train, validation_data=val, epochs=1, verbose=0, callbacks=[callback] if callback else [])
                inside[mode].append(callback.seconds if callback else 0.0)
                return len(records)

            return go

        out = timing.interleaved({mode: epoch(mode) for mode in modes}, rounds)
        run.finish()
    off = out["off"]["seconds"]
    out["noise_floor"] = statistics.median(abs(a / b - 1.0) for a, b in zip(out["off_again"]["seconds"], off))
    out["overhead"] = {m: timing.paired_ratio(out[m], out["off"])["median"] - 1.0 for m in modes if m != "off"}
    out["inside_callbacks"] = {
        m: statistics.median(s / t for s, t in zip(inside[m][-rounds:], out[m]["seconds"]))
        for m in modes
        if not m.startswith("off")
    }
    out.update(variant=variant, crop=crop, batch=batch)
    return out
