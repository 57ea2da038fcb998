"""The tf.data pipeline: fixed shapes, every evaluation example once, seeded order, per-host shards."""

import numpy as np
import pytest

from mer_jax.data.examples import Examples
from mer_jax.data.pipeline import batches


def _examples(n=23, n_mfcc=3, max_tokens=6):
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 12, n)
    frames = np.concatenate([np.full((length, n_mfcc), i, np.float32) for i, length in enumerate(lengths)])
    tokens = rng.integers(5, 50, (n, max_tokens)).astype(np.int32)
    return Examples(ids=np.array([f"u{i}" for i in range(n)]), frames=frames, lengths=lengths.astype(np.int32),
                    input_ids=tokens, attention_mask=np.ones_like(tokens), labels=np.arange(n, dtype=np.int32) % 4)


def test_batches_have_fixed_shapes_and_padded_frames():
    ex = _examples()
    for batch in batches(ex, global_batch_size=4, max_frames=8, train=True, seed=0):
        assert batch["mfcc"].shape == (4, 8, 3) and batch["input_ids"].shape == (4, 6)
        for row, i, length in zip(batch["mfcc"], batch["index"], batch["mfcc_length"]):
            assert length == min(ex.lengths[i], 8)
            assert (row[:length] == i).all() and (row[length:] == 0).all()  # example i's frames hold value i


def test_evaluation_sees_every_example_once_and_pads_with_weight_zero():
    ex = _examples()
    seen = list(batches(ex, global_batch_size=5, max_frames=8, train=False))
    index = np.concatenate([b["index"] for b in seen])
    weight = np.concatenate([b["weight"] for b in seen])
    assert list(index[weight > 0]) == list(range(23)) and (index[weight == 0] == -1).all() and len(index) == 25
    assert list(np.concatenate([b["label"] for b in seen])[:23]) == list(ex.labels)


def test_training_order_depends_only_on_seed_and_epoch():
    ex = _examples()

    def order(seed, epoch):
        return np.concatenate([b["index"] for b in batches(ex, global_batch_size=4, max_frames=8, train=True,
                                                           seed=seed, epoch=epoch)])

    assert np.array_equal(order(0, 1), order(0, 1))
    assert not np.array_equal(order(0, 1), order(0, 2)) and not np.array_equal(order(0, 1), order(1, 1))
    assert len(order(0, 0)) == 20 and len(set(order(0, 0))) == 20  # the incomplete last batch is dropped


def test_each_process_reads_its_own_share_of_every_global_batch():
    ex = _examples()
    full = list(batches(ex, global_batch_size=4, max_frames=8, train=True, seed=3))
    shares = [list(batches(ex, global_batch_size=4, max_frames=8, train=True, seed=3, process_index=p,
                           process_count=2)) for p in range(2)]
    for k, batch in enumerate(full):
        local = np.concatenate([shares[0][k]["index"], shares[1][k]["index"]])
        assert sorted(local) == sorted(batch["index"])  # same examples in the same global step
        assert len(shares[0][k]["index"]) == 2
    with pytest.raises(ValueError, match="not divisible"):
        batches(ex, global_batch_size=5, max_frames=8, train=True, process_count=2)
