"""A quiet console: one line per epoch and the sweep's summary, not start-up noise.

TensorFlow's C++ core logs through absl; messages from before absl is initialised (oneDNN notice,
CUDA stub probing, CPU-instruction advice) are INFO lines written straight to the stderr file
descriptor while the library loads, where no log level reaches them. :func:`import_tensorflow`
drops exactly those INFO lines and passes every warning and error through. On a machine without
an NVIDIA device, TensorFlow's own log level also drops the failed-``cuInit`` error of its GPU
probe; on a GPU machine that level stays at warnings, so CUDA library errors are always shown.
Never ``TF_ENABLE_ONEDNN_OPTS=0``: that changes the arithmetic, not the console.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

_PRE_INIT_BANNER = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_ABSL_LINE = re.compile(rb"^[IWEF]\d{4} ")


def has_nvidia_device() -> bool:
    return any(Path("/dev").glob("nvidia[0-9]*")) or Path("/proc/driver/nvidia").exists()


def set_log_levels() -> None:
    """Before TensorFlow or MLflow is imported: their log levels (user settings win)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if has_nvidia_device() else "3")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


def _keep(lines: list[bytes]) -> list[bytes]:
    kept, in_info = [], False
    for line in lines:
        if line.rstrip(b"\n") == _PRE_INIT_BANNER:
            continue
        if _ABSL_LINE.match(line):
            in_info = line.startswith(b"I")
        if not in_info:  # continuation lines belong to the message above them
            kept.append(line)
    return kept


def import_tensorflow() -> None:
    """Import TensorFlow with its pre-initialisation INFO lines dropped."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in _keep(captured.readlines()):
                sys.stderr.buffer.write(line)
            sys.stderr.flush()
