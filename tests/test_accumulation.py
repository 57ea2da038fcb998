"""Gradient accumulation: k batches of B, accumulated, make the same update as one batch of k x B."""

import jax
import numpy as np

from mer_jax.config import base_config
from mer_jax.models.registry import build_model
from mer_jax.training.objectives import cross_entropy
from mer_jax.training.optimizer import make_optimizer, parameter_groups
from mer_jax.training.steps import SplitModel, make_train_step, stack


def _train(accumulate: int, batches: list[dict]):
    config = base_config()
    config.model.update(modalities="audio", d_model=16, num_heads=2, dropout=0.0)
    config.train.accumulate_steps = accumulate
    model = build_model(config, {"num_classes": 4})
    split = SplitModel.of(model)
    optimizer = make_optimizer(config.train, 10, parameter_groups(split.params, model.encoder_modules))
    params, other = stack([split.params]), stack([split.other])
    opt_state = jax.vmap(optimizer.init)(params)
    step = make_train_step(split, optimizer, cross_entropy)
    keys = jax.numpy.stack([jax.random.key(0)])
    before = jax.tree.map(np.asarray, params)
    for k, batch in enumerate(batches):
        params, other, opt_state, _ = step(params, other, opt_state, {name: v[None] for name, v in batch.items()}, keys)
        changed = not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(params)))
        assert changed == ((k + 1) % accumulate == 0)  # parameters move only at the k-th batch
    return params


def test_two_accumulated_half_batches_update_like_one_full_batch():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 21, 8).astype(np.int32)
    batch = {"mfcc": rng.normal(size=(8, 20, 40)).astype(np.float32), "mfcc_length": lengths,
             "label": rng.integers(0, 4, 8).astype(np.int32), "weight": np.ones(8, np.float32)}
    halves = [{k: v[:4] for k, v in batch.items()}, {k: v[4:] for k, v in batch.items()}]
    accumulated = _train(2, halves)
    whole = _train(1, [batch])
    for a, b in zip(jax.tree.leaves(accumulated), jax.tree.leaves(whole)):
        np.testing.assert_allclose(a, b, atol=1e-6)
