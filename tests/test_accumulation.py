"""Gradient accumulation: k batches of B, accumulated, make the same update as one batch of k x B.

Adam's first update is lr * g / |g| elementwise: it does not see the scale of the gradient, so equal
parameters alone cannot tell a mean of the k gradients from their sum. The tests therefore also read
the gradient that reached Adam out of its first moment (mu = (1 - b1) g after one update) and compare
it with the mean gradient of the full batch, computed here by jax.grad of the loss.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mer_jax.config import base_config
from mer_jax.models.registry import build_model
from mer_jax.training.objectives import cross_entropy
from mer_jax.training.optimizer import make_optimizer, parameter_groups
from mer_jax.training.steps import SplitModel, make_train_step, stack

B1 = 0.9  # optax.adamw's default b1, which make_optimizer keeps


def _config(accumulate: int, clip_norm: float):
    config = base_config()
    config.model.update(modalities="audio", d_model=16, num_heads=2, dropout=0.0)
    config.train.update(accumulate_steps=accumulate, clip_norm=clip_norm)
    return config


def _train(accumulate: int, batches: list[dict], clip_norm: float = 0.0):
    config = _config(accumulate, clip_norm)
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
    return params, opt_state


def _first_moments(opt_state) -> dict:
    """Adam's first moment of every parameter (one seed), by parameter path."""
    found = {}
    for _, mu in optax.tree_utils.tree_get_all_with_path(opt_state, "mu"):  # one per learning-rate group
        for path, leaf in jax.tree_util.tree_leaves_with_path(mu):
            found[jax.tree_util.keystr(path)] = np.asarray(leaf)[0]
    return found


def _full_batch_gradient(batch: dict) -> dict:
    """d(mean cross-entropy over the whole batch)/d(params) of the model both runs start from."""
    model = build_model(_config(1, 0.0), {"num_classes": 4})
    split = SplitModel.of(model)

    def loss(params):
        outputs, _ = split.apply(params, split.other, jax.tree.map(jnp.asarray, batch), jax.random.key(0))
        return cross_entropy(outputs, batch)[0]

    grads = jax.grad(loss)(split.params)
    return {jax.tree_util.keystr(path): np.asarray(g) for path, g in jax.tree_util.tree_leaves_with_path(grads)}


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 21, 8).astype(np.int32)
    return {"mfcc": rng.normal(size=(8, 20, 40)).astype(np.float32), "mfcc_length": lengths,
            "label": rng.integers(0, 4, 8).astype(np.int32), "weight": np.ones(8, np.float32)}


def _halves(batch):
    return [{k: v[:4] for k, v in batch.items()}, {k: v[4:] for k, v in batch.items()}]


def test_two_accumulated_half_batches_update_like_one_full_batch(batch):
    accumulated, accumulated_state = _train(2, _halves(batch))
    whole, whole_state = _train(1, [batch])
    # The gradient that reached Adam is the mean of the two halves' (= the full batch's), not their sum.
    gradient = _full_batch_gradient(batch)
    moments = {"accumulated": _first_moments(accumulated_state), "whole": _first_moments(whole_state)}
    for run, mu in moments.items():
        assert set(mu) == set(gradient), run
        for name, g in gradient.items():
            # (float32 sums in another order; the largest gradient entries are about 0.1)
            np.testing.assert_allclose(mu[name], (1 - B1) * g, rtol=1e-4, atol=1e-7, err_msg=f"{run}: {name}")
    for a, b in zip(jax.tree.leaves(accumulated), jax.tree.leaves(whole), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_clipping_applies_once_to_the_accumulated_mean_gradient(batch):
    """clip_norm below the full batch's gradient norm: the mean gradient is scaled to clip_norm as a whole
    (clipping each half before averaging would give another direction and norm)."""
    gradient = _full_batch_gradient(batch)
    norm = np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in gradient.values()))
    clip = norm / 2
    halves = [_full_batch_gradient(half) for half in _halves(batch)]
    per_half = {n: sum(h[n] * min(1.0, clip / np.sqrt(sum(float((x ** 2).sum()) for x in h.values())))
                       for h in halves) / 2 for n in gradient}
    assert max(np.abs(per_half[n] - gradient[n] / 2).max() for n in gradient) > 1e-3  # the wrong order shows
    _, state = _train(2, _halves(batch), clip_norm=clip)
    mu = _first_moments(state)
    for name, g in gradient.items():
        np.testing.assert_allclose(mu[name], (1 - B1) * g * clip / norm, rtol=1e-4, atol=1e-7, err_msg=name)
