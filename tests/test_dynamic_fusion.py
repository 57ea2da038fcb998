"""The dynamic-fusion model as the train step sees it: dropout that changes every step, and padding
that changes no prediction."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mer_jax.config import base_config
from mer_jax.models.registry import build_model
from mer_jax.training.steps import SplitModel

from float32 import assert_float32_close


def _config(query="frames", dropout=0.3):
    c = base_config()
    c.model.update(d_model=16, num_heads=2, dropout=dropout, query=query)
    c.text.update(hidden=16, heads=2, layers=2)
    c.features.max_tokens = 12
    return c


def _batch(rng, batch=4, frames=20, tokens=8):
    lengths = rng.integers(3, frames + 1, batch)
    token_lengths = rng.integers(2, tokens + 1, batch)
    return {"mfcc": rng.normal(size=(batch, frames, 40)).astype(np.float32), "mfcc_length": lengths.astype(np.int32),
            "input_ids": rng.integers(5, 30, (batch, tokens)).astype(np.int32),
            "attention_mask": (np.arange(tokens)[None] < token_lengths[:, None]).astype(np.int32)}


def _dropout_layers(split: SplitModel, key) -> list[nnx.Dropout]:
    model = split.merge(split.params, split.other, train=True)
    nnx.reseed(model, dropout=key)
    return [m for _, m in nnx.iter_graph(model) if isinstance(m, nnx.Dropout)]


def test_every_dropout_draws_a_new_mask_from_each_step_key():
    split = SplitModel.of(build_model(_config(), {"num_classes": 6, "vocab_size": 30}))
    ones = jnp.ones(20_000)
    masks = {k: [np.asarray(d(ones) == 0) for d in _dropout_layers(split, jax.random.key(k))] for k in (0, 1)}
    again = [np.asarray(d(ones) == 0) for d in _dropout_layers(split, jax.random.key(0))]
    assert len(masks[0]) >= 5  # classifier, cross-modal attention, the text Transformer's layers
    for first, second, repeat in zip(masks[0], masks[1], again):
        assert abs(first.mean() - 0.3) < 0.015  # the configured rate
        assert (first != second).mean() > 0.3  # another step, another mask
        assert np.array_equal(first, repeat)  # the same step key, the same mask (resumed runs)
    assert (masks[0][0] != masks[0][1]).mean() > 0.3  # and the layers do not share one mask


def test_train_mode_outputs_change_with_the_step_key():
    split = SplitModel.of(build_model(_config(), {"num_classes": 6, "vocab_size": 30}))
    batch = _batch(np.random.default_rng(0))
    logits = [split.apply(split.params, split.other, batch, jax.random.key(k))[0]["logits"] for k in (0, 1, 0)]
    assert float(jnp.abs(logits[0] - logits[1]).max()) > 1e-3
    np.testing.assert_array_equal(logits[0], logits[2])


@pytest.mark.parametrize("modalities", ["audio+text", "audio", "text"])
@pytest.mark.parametrize("query", ["frames", "pooled"])
def test_extra_padding_changes_no_prediction(query, modalities):
    config = _config(query)
    config.model.modalities = modalities
    model = build_model(config, {"num_classes": 6, "vocab_size": 30})
    model.eval()
    rng = np.random.default_rng(1)
    batch = _batch(rng)
    padded = {  # 15 more frames and 4 more tokens, all padding, filled with noise
        "mfcc": np.concatenate([batch["mfcc"], 50 * rng.normal(size=(4, 15, 40)).astype(np.float32)], axis=1),
        "mfcc_length": batch["mfcc_length"],
        "input_ids": np.concatenate([batch["input_ids"], rng.integers(5, 30, (4, 4)).astype(np.int32)], axis=1),
        "attention_mask": np.pad(batch["attention_mask"], ((0, 0), (0, 4))),
    }
    noisy = dict(batch, mfcc=batch["mfcc"].copy(), input_ids=batch["input_ids"].copy())
    frames = np.arange(20)[None, :, None] >= batch["mfcc_length"][:, None, None]
    noisy["mfcc"] = np.where(frames, 100.0, batch["mfcc"]).astype(np.float32)
    noisy["input_ids"] = np.where(batch["attention_mask"] == 0, 7, batch["input_ids"])
    expected = model(batch)["logits"]
    for other in (padded, noisy):  # padded: another shape, so another XLA program
        assert_float32_close(model(other)["logits"], expected)
