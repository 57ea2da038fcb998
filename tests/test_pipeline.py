"""The tf.data pipeline: fixed shapes (one per length bucket), every evaluation example once, seeded
order, equal per-host shares."""

import numpy as np
import pytest

from mer_jax.data.examples import Examples, Ragged, batch_buckets, batch_order, length_buckets, numpy_batches
from mer_jax.data.pipeline import batches, seed_batches


def _examples(n=23, n_mfcc=3, max_tokens=6, max_frames=8):
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 12, n)
    frames = Ragged.from_rows([np.full((min(length, max_frames), n_mfcc), i, np.float32)
                               for i, length in enumerate(lengths)])
    tokens = rng.integers(5, 50, (n, max_tokens)).astype(np.int32)
    return Examples(np.array([f"u{i}" for i in range(n)]),
                    {"mfcc": frames, "mfcc_length": frames.lengths.astype(np.int32), "input_ids": tokens,
                     "label": np.arange(n, dtype=np.int32) % 4, "weight": np.ones(n, np.float32)},
                    {"mfcc": max_frames})


def _dialogues(n=7, dim=2, max_utterances=5):
    """Dialogue-level examples: ragged utterance vectors, labels and weights; vector of utterance j of dialogue i = i."""
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, max_utterances + 1, n)
    ragged = lambda rows: Ragged.from_rows(rows)  # noqa: E731
    return Examples(ragged([np.array([f"d{i}_u{j}" for j in range(k)]) for i, k in enumerate(sizes)]),
                    {"text": ragged([np.full((k, dim), i, np.float32) for i, k in enumerate(sizes)]),
                     "label": ragged([np.arange(k, dtype=np.int32) for k in sizes]),
                     "weight": ragged([np.ones(k, np.float32) for k in sizes])},
                    {"text": max_utterances, "label": max_utterances, "weight": max_utterances})


def test_batches_have_fixed_shapes_and_padded_frames():
    ex = _examples()
    for batch in batches(ex, global_batch_size=4, train=True, seed=0):
        assert batch["mfcc"].shape == (4, 8, 3) and batch["input_ids"].shape == (4, 6)
        for row, i, length in zip(batch["mfcc"], batch["index"], batch["mfcc_length"]):
            assert length == ex.fields["mfcc_length"][i]
            assert (row[:length] == i).all() and (row[length:] == 0).all()  # example i's frames hold value i


def test_evaluation_sees_every_example_once_and_pads_with_weight_zero():
    ex = _examples()
    seen = list(batches(ex, global_batch_size=5, train=False))
    index = np.concatenate([b["index"] for b in seen])
    weight = np.concatenate([b["weight"] for b in seen])
    assert list(index[weight > 0]) == list(range(23)) and (index[weight == 0] == -1).all() and len(index) == 25
    assert list(np.concatenate([b["label"] for b in seen])[:23]) == list(ex.fields["label"])
    numpy_seen = list(numpy_batches(ex, 5))  # the TensorFlow-free batches (inference) agree
    for a, b in zip(seen, numpy_seen):
        assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_dialogue_examples_pad_utterances_with_weight_zero():
    ex = _dialogues()
    seen = list(batches(ex, global_batch_size=3, train=False))
    assert all(b["text"].shape == (3, 5, 2) and b["weight"].shape == (3, 5) for b in seen)
    weight = np.concatenate([b["weight"] for b in seen])
    text = np.concatenate([b["text"] for b in seen])
    assert weight.sum() == ex.fields["weight"].lengths.sum()
    assert (text[weight == 0] == 0).all() and (weight[7:] == 0).all()  # padded utterances and padding dialogues
    outputs = np.concatenate([b["text"][..., 0] for b in seen])[:7]  # a stand-in for per-utterance outputs
    assert list(ex.real(outputs)) == [int(u.split("_")[0][1:]) for u in ex.utterance_ids()]


def test_training_order_depends_only_on_seed_and_epoch():
    ex = _examples()

    def order(seed, epoch):
        return np.concatenate([b["index"] for b in batches(ex, global_batch_size=4, train=True, seed=seed,
                                                           epoch=epoch)])

    assert np.array_equal(order(0, 1), order(0, 1))
    assert not np.array_equal(order(0, 1), order(0, 2)) and not np.array_equal(order(0, 1), order(1, 1))
    assert len(order(0, 0)) == 20 and len(set(order(0, 0))) == 20  # the incomplete last batch is dropped


@pytest.mark.parametrize("train", [True, False])
def test_every_process_runs_the_same_steps_and_together_reads_each_global_batch(train):
    # 23 examples, 2 processes, global batch 4: 5 training steps each (the 3 left over are dropped by
    # all processes alike), and process 0's rows then process 1's rows are exactly the global batch.
    ex = _examples()
    full = list(batches(ex, global_batch_size=4, train=train, seed=3))
    shares = [list(batches(ex, global_batch_size=4, train=train, seed=3, process_index=p, process_count=2))
              for p in range(2)]
    assert len(shares[0]) == len(shares[1]) == len(full) == (5 if train else 6)
    for k, batch in enumerate(full):
        for name in batch:
            assert np.array_equal(np.concatenate([shares[0][k][name], shares[1][k][name]]), batch[name])
    with pytest.raises(ValueError, match="not divisible"):
        batches(ex, global_batch_size=5, train=True, process_count=2)


def _bucketed(make):
    def made():
        ex = make()
        return ex.with_buckets(length_buckets(ex, 3, multiple=2))
    return made


def test_length_buckets_are_quantiles_of_the_fill_and_each_example_takes_the_shortest_that_holds_it():
    # frames 1..32 of 32, tokens 1 of 16: fill = frames / 32; quantiles 0.25, 0.5, 0.75 of 1..32 are
    # 8.75, 16.5, 24.25 frames -> 16, 24, 32 frames (multiples of 8) and 8, 16, 16 tokens (4.4, 8.25, 12.1)
    n = 32
    ex = Examples(np.arange(n), {"mfcc": Ragged.from_rows([np.zeros((k, 2)) for k in range(1, n + 1)]),
                                 "input_ids": Ragged.from_rows([np.ones(1, np.int32)] * (n - 1) + [np.ones(9, np.int32)]),
                                 "label": np.zeros(n, np.int32), "weight": np.ones(n, np.float32)},
                  {"mfcc": 32, "input_ids": 16})
    shapes = length_buckets(ex, 4)
    assert shapes == ({"mfcc": 16, "input_ids": 8}, {"mfcc": 24, "input_ids": 16}, {"mfcc": 32, "input_ids": 16})
    bucket = ex.with_buckets(shapes).bucket_of()
    assert list(bucket[[0, 15, 16, 23, 24, 30]]) == [0, 0, 1, 1, 2, 2]
    assert bucket[31] == 2  # 32 frames and 9 tokens
    assert length_buckets(ex, 1) == () and ex.bucket_of().max() == 0  # off: one bucket, the full sizes


@pytest.mark.parametrize("train", [True, False])
def test_bucketed_order_keeps_the_examples_and_every_batch_fits_its_steps_bucket_for_every_seed(train):
    rng = np.random.default_rng(0)
    buckets = rng.integers(0, 4, 103)
    for epoch in range(3):
        step_bucket = batch_buckets(103, 8, train=train, epoch=epoch, buckets=buckets)
        for seed in range(4):
            plain = batch_order(103, 8, train=train, seed=seed, epoch=epoch)
            order = batch_order(103, 8, train=train, seed=seed, epoch=epoch, buckets=buckets)
            assert order.shape == plain.shape == (len(step_bucket), 8)
            assert sorted(order[order >= 0]) == sorted(plain[plain >= 0])  # the same examples, regrouped
            for row, bucket in zip(order, step_bucket):
                assert (buckets[row[row >= 0]] <= bucket).all()
        assert np.mean(step_bucket == step_bucket.max()) < 0.5  # most batches are not the longest
    orders = [batch_order(103, 8, train=True, seed=0, epoch=e, buckets=buckets) for e in (0, 1)]
    assert not np.array_equal(orders[0], orders[1])


def test_bucketed_batches_are_padded_to_their_buckets_shape():
    ex = _bucketed(_examples)()
    shapes = [s["mfcc"] for s in ex.shapes()]
    assert len(shapes) > 1 and shapes[-1] == 8
    seen = set()
    for train in (True, False):
        for batch in batches(ex, global_batch_size=4, train=train, seed=1):
            length = batch["mfcc"].shape[1]
            seen.add(length)
            assert length in shapes and batch["mfcc_length"].max() <= length
            for row, i, frames in zip(batch["mfcc"], batch["index"], batch["mfcc_length"]):
                assert (row[:frames] == max(i, 0)).all() and (row[frames:] == 0).all()
    assert len(seen) > 1
    for train in (True, False):  # the TensorFlow-free batches (inference, benchmarks) are the same
        for a, b in zip(batches(ex, global_batch_size=4, train=train, seed=1, epoch=2),
                        numpy_batches(ex, 4, train=train, seed=1, epoch=2), strict=True):
            assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("make", [_examples, _dialogues, _bucketed(_examples), _bucketed(_dialogues)])
def test_seed_batches_stack_each_seeds_own_batches_in_one_pipeline(make):
    ex = make()
    stacked = list(seed_batches(ex, seeds=[3, 4, 5], global_batch_size=2, epoch=1, process_index=1, process_count=2))
    per_seed = [list(batches(ex, global_batch_size=2, train=True, seed=s, epoch=1, process_index=1, process_count=2))
                for s in (3, 4, 5)]
    assert len(stacked) == len(per_seed[0]) == len(ex) // 2
    for step, batch in enumerate(stacked):
        assert set(batch) == set(per_seed[0][step])
        for name in batch:
            np.testing.assert_array_equal(batch[name], np.stack([seed[step][name] for seed in per_seed]))
    orders = np.stack([batch["index"] for batch in stacked], axis=1)  # (seeds, steps, local batch)
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])  # own orders


@pytest.mark.parametrize("power, weights", [(1.0, [2 / 3, 2 / 3, 2 / 3, 2.0]), (0.5, [0.8453, 0.8453, 0.8453, 1.4641])])
def test_class_weights_by_hand_per_utterance_and_per_dialogue(power, weights):
    # labels 0, 0, 0, 1 of 3 classes: n / (C n_c) = 4/9 and 4/3, scaled to mean 1 -> 2/3 and 2 (classes
    # 0 and 1 then weigh 2 each); power 0.5: 2/3 and 1.1547 -> 0.8453 and 1.4641
    utterances = Examples(np.arange(4), {"label": np.array([0, 0, 0, 1], np.int32), "weight": np.ones(4, np.float32)})
    np.testing.assert_allclose(utterances.class_weighted(3, power).fields["weight"], weights, rtol=1e-4)
    dialogues = Examples(Ragged.from_rows([np.arange(3), np.arange(1)]),
                         {"label": Ragged.from_rows([np.array([0, 1, 0], np.int32), np.array([0], np.int32)]),
                          "weight": Ragged.from_rows([np.ones(3, np.float32), np.ones(1, np.float32)])},
                         {"label": 3, "weight": 3})
    weighted = dialogues.class_weighted(3, power).fields["weight"]
    np.testing.assert_allclose(weighted.values, np.array(weights)[[0, 3, 1, 2]], rtol=1e-4)
    assert list(weighted.lengths) == [3, 1]


def test_outputs_of_bucketed_dialogue_batches_return_in_example_order_at_full_size():
    # a stand-in model output: each utterance's vector (B, U_bucket, dim), batch by batch
    plain, bucketed = _dialogues(), _bucketed(_dialogues)()
    assert len({b["text"].shape[1] for b in batches(bucketed, global_batch_size=2, train=False)}) > 1

    def outputs(examples):
        return examples.in_order((b["text"][None], b["index"]) for b in batches(examples, global_batch_size=2,
                                                                                 train=False))

    expected = plain.padded_field("text")[None]
    np.testing.assert_array_equal(outputs(plain), expected)
    np.testing.assert_array_equal(outputs(bucketed), expected)
