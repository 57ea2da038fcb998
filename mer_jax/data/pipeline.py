"""The tf.data input pipeline: shuffle, shard per host, pad, batch, prefetch; yields numpy batches.

The only module (with the TFDS builder) that imports TensorFlow. Batches have fixed shapes (frames
padded to ``max_frames``, tokens to ``max_tokens``), so the jitted step never recompiles; an
evaluation set is padded up to a whole number of batches with examples of weight 0 so that every
example is seen exactly once and metrics ignore the padding; each example carries its index. Each epoch's order depends only on
(seed, epoch), so a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # tf.data only moves data here; skip oneDNN and its banner
import tensorflow as tf  # noqa: E402

from mer_jax.data.examples import Examples  # noqa: E402

tf.config.set_visible_devices([], "GPU")  # tf.data runs on the host; accelerators belong to JAX


def batches(examples: Examples, *, global_batch_size: int, max_frames: int, train: bool, seed: int = 0,
            epoch: int = 0, process_index: int = 0, process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
    """This process's share of each global batch, as a dict of numpy arrays.

    Training batches are shuffled and the last incomplete batch is dropped; evaluation batches keep
    every example once, in order, padded with weight-0 examples.
    """
    if global_batch_size % process_count:
        raise ValueError(f"global batch size {global_batch_size} is not divisible by {process_count} processes")
    n = len(examples)
    order = np.arange(n)
    index = order
    if not train:
        pad = -n % global_batch_size
        order = np.concatenate([order, np.zeros(pad, np.int64)])
        index = np.concatenate([index, np.full(pad, -1)])
    elif n < global_batch_size:
        raise ValueError(f"{n} training examples are fewer than one batch of {global_batch_size}")
    frames = tf.RaggedTensor.from_row_lengths(examples.frames, examples.lengths.astype(np.int64))
    data = tf.data.Dataset.from_tensor_slices({
        "mfcc": tf.gather(frames, order),
        "mfcc_length": examples.lengths[order],
        "input_ids": examples.input_ids[order],
        "attention_mask": examples.attention_mask[order],
        "label": examples.labels[order],
        "weight": (index >= 0).astype(np.float32),
        "index": index.astype(np.int32),  # position in `examples`; -1 marks padding
    })
    if train:
        data = data.shuffle(len(order), seed=seed * 100_003 + epoch, reshuffle_each_iteration=False)
    # Host k takes examples k, k + P, k + 2P, ...: every local batch holds its share of one global batch.
    data = data.shard(process_count, process_index)
    data = data.map(lambda ex: {**ex, "mfcc": ex["mfcc"][:max_frames],
                                "mfcc_length": tf.minimum(ex["mfcc_length"], max_frames)})
    shapes = {key: [max_frames, examples.frames.shape[1]] if key == "mfcc" else spec.shape
              for key, spec in data.element_spec.items()}
    data = data.padded_batch(global_batch_size // process_count, padded_shapes=shapes, drop_remainder=True)
    return data.prefetch(tf.data.AUTOTUNE).as_numpy_iterator()
