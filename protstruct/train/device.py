"""Process-level TensorFlow set-up: CPU threads, GPU memory growth, precision, strategy.

Thread counts can only be set before TensorFlow starts in a process; joblib reuses worker
processes, so they go through environment variables set before the first import.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

log = logging.getLogger(__name__)


def set_cpu_threads(workers: int, assigned: int | None = None) -> int | None:
    """Split the cores between ``workers`` parallel jobs (intra-op threads = cores // workers), or
    use the ``assigned`` CPU count a cluster engine (Ray) gave this job."""
    if workers <= 1 and not assigned:
        return None
    threads = max(1, int(assigned) if assigned else (os.cpu_count() or 1) // workers)
    if "tensorflow" in sys.modules:
        return int(os.environ.get("TF_NUM_INTRAOP_THREADS", 0)) or None  # set by an earlier job
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    return threads


def split_cpu(replicas: int) -> None:
    """Expose the CPU as ``replicas`` logical devices (tests of multi-device code without GPUs)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    except RuntimeError as exc:  # TensorFlow already initialised in this process
        current = len(tf.config.list_logical_devices("CPU"))
        if current != replicas:
            raise RuntimeError(
                f"trainer.cpu_replicas={replicas}: TensorFlow already started with "
                f"{current} CPU device(s) in this process; use a fresh process"
            ) from exc


def enable_memory_growth() -> list[str]:
    """On GPUs, allocate memory as needed instead of grabbing the whole card."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        # RuntimeError: already initialised by an earlier job in this process: its setting stays
        with contextlib.suppress(RuntimeError):
            tf.config.experimental.set_memory_growth(gpu, True)
    return [g.name for g in gpus]


def strategy(name: str, cpu_replicas: int | None = None):
    """``default`` (one device) or ``mirrored`` (data parallel over all GPUs, or split CPUs)."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if cpu_replicas:
            split_cpu(cpu_replicas)
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    raise ValueError(f"trainer.strategy: expected 'default' or 'mirrored', got {name!r}")


def set_precision(precision: str) -> None:
    import keras

    allowed = ("float32", "mixed_float16", "mixed_bfloat16")
    if precision not in allowed:
        raise ValueError(f"trainer.precision: expected one of {allowed}, got {precision!r}")
    keras.mixed_precision.set_global_policy(precision)


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports ru_maxrss in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
