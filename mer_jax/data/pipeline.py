"""The tf.data input pipeline: this process's share of every global batch, padded, prefetched, as numpy.

With the TFDS builders, the only module that uses TensorFlow (data/tf_runtime.py). It knows no model: it gathers
whatever fields the examples have and pads each ragged field to one of a few fixed sizes (the
full size, or the batch's length bucket), so the jitted step compiles once per bucket. The order
comes from `batch_order` (numpy, seeded by (seed, epoch)): every process yields the same number of
batches, and together exactly one global batch per step. Evaluation sets are padded up to whole
batches with weight-0 copies; each example carries its index (-1: padding).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from mer_jax.data.examples import Examples, Ragged, batch_order, batch_buckets, process_share
from mer_jax.data.tf_runtime import tf


def batches(examples: Examples, *, global_batch_size: int, train: bool, seed: int = 0, epoch: int = 0,
            process_index: int = 0, process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
    """This process's share of each global batch of one pass, as a dict of numpy arrays.

    Training batches are shuffled and the last incomplete batch is dropped; evaluation batches keep
    every example once (in order, or grouped by length bucket), padded with weight-0 examples.
    """
    buckets = examples.bucket_of() if examples.buckets else None
    order = batch_order(len(examples), global_batch_size, train=train, seed=seed, epoch=epoch, buckets=buckets)
    shapes = _step_shapes(examples, global_batch_size, train=train, epoch=epoch)
    data = _dataset(examples, process_share(order, process_index, process_count), shapes)
    return data.prefetch(tf.data.AUTOTUNE).as_numpy_iterator()


def seed_batches(examples: Examples, *, seeds: Sequence[int], global_batch_size: int, epoch: int,
                 process_index: int = 0, process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
    """One training epoch for seeds trained together: every field stacked over the seeds, (N, local
    batch, ...), seed k's batches in its own order (seed k, epoch), all seeds' batches of one step from
    the same length bucket. One pipeline, so one iterator that runs to its end (several iterators left
    unfinished can hang tf.data when they are deleted)."""
    buckets = examples.bucket_of() if examples.buckets else None
    orders = [batch_order(len(examples), global_batch_size, train=True, seed=seed, epoch=epoch, buckets=buckets)
              for seed in seeds]
    shapes = _step_shapes(examples, global_batch_size, train=True, epoch=epoch)
    per_seed = tuple(_dataset(examples, process_share(order, process_index, process_count), shapes)
                     for order in orders)
    data = tf.data.Dataset.zip(per_seed).map(lambda *batch: {name: tf.stack([b[name] for b in batch])
                                                              for name in batch[0]})
    return data.prefetch(tf.data.AUTOTUNE).as_numpy_iterator()


def _step_shapes(examples: Examples, global_batch_size: int, *, train: bool, epoch: int) -> dict[str, np.ndarray]:
    """Per ragged field, (steps,) the length every batch of that step is padded to."""
    shapes = examples.shapes()
    bucket = batch_buckets(len(examples), global_batch_size, train=train, epoch=epoch, buckets=examples.bucket_of())
    return {name: np.array([shapes[b][name] for b in bucket], np.int32) for name in shapes[0]}


def _dataset(examples: Examples, rows: np.ndarray, step_shapes: dict[str, np.ndarray]) -> tf.data.Dataset:
    """Batches of `rows` (steps, local batch size) of examples; ragged fields padded to `step_shapes`."""
    index = rows.reshape(-1)
    take = np.maximum(index, 0)

    def gathered(field):
        if isinstance(field, Ragged):
            return tf.gather(tf.RaggedTensor.from_row_lengths(field.values, field.lengths), take)
        return field[take]

    data = tf.data.Dataset.from_tensor_slices(
        {**{name: gathered(f) for name, f in examples.fields.items()}, "index": index.astype(np.int32)})

    def mark_padding(example):
        real = tf.cast(example["index"] >= 0, example["weight"].dtype)
        return {**example, "weight": example["weight"] * real}

    def pad_to_shape(batch, shape):
        def padded(name, value):
            if name not in shape:
                return value
            extra = [[0, 0], [0, shape[name] - tf.shape(value)[1]], *[[0, 0]] * (len(value.shape) - 2)]
            return tf.pad(value, extra)
        return {name: padded(name, value) for name, value in batch.items()}

    batched = data.map(mark_padding).padded_batch(rows.shape[1], drop_remainder=True)
    return tf.data.Dataset.zip((batched, tf.data.Dataset.from_tensor_slices(step_shapes))).map(pad_to_shape)
