"""TensorFlow for the tf.data pipeline and the TFDS builders (nothing else imports it), on the host only.

The ``tensorflow`` wheel probes for a CUDA driver as it loads and, on a machine without one, prints
"Could not find cuda drivers" (and "failed call to cuInit") before its logging has read TF_CPP_MIN_LOG_LEVEL; tf.data never uses a
GPU, so those start-up lines of the C++ runtime are silenced (a failing import still raises, and says why).
"""

from __future__ import annotations

import contextlib
import os


@contextlib.contextmanager
def _native_stderr_silenced():
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # tf.data only moves data here; skip oneDNN and its banner
with _native_stderr_silenced():  # the probe runs as TensorFlow loads and as it first lists its devices
    import tensorflow as tf  # noqa: E402

    tf.config.set_visible_devices([], "GPU")  # tf.data runs on the host; accelerators belong to JAX
