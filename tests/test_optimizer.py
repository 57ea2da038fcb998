"""The optimiser against PyTorch's: ``train.optimizer=adam`` is ``torch.optim.Adam(weight_decay=...)``."""

import jax
import numpy as np
import torch

from mer_jax.config import base_config
from mer_jax.training.optimizer import make_optimizer


def test_adam_l2_decays_every_parameter_as_torch_adam_does():
    """A kernel, a bias and a norm scale, the same gradients for 6 steps: our ``adam`` with L2 ends where
    torch's Adam(weight_decay) ends, biases and norm scales included (torch decays every parameter)."""
    lr, wd, steps = 1e-2, 0.5, 6
    config = base_config("lpgnet").train
    config.optimizer, config.lr, config.weight_decay = "adam", lr, wd
    config.schedule, config.clip_norm = "constant", 0.0
    rng = np.random.default_rng(0)
    params = {"dense": {"kernel": rng.normal(size=(3, 4)), "bias": rng.normal(size=4)},
              "norm": {"scale": 1.0 + rng.normal(size=4)}}
    params = jax.tree.map(lambda p: p.astype(np.float32), params)
    grads = [jax.tree.map(lambda p: rng.normal(size=p.shape).astype(np.float32), params) for _ in range(steps)]

    optimizer = make_optimizer(config, steps, jax.tree.map(lambda _: "rest", params))
    ours, state = params, optimizer.init(params)
    for g in grads:
        updates, state = optimizer.update(g, state, ours)
        ours = jax.tree.map(lambda p, u: p + u, ours, updates)

    leaves, treedef = jax.tree.flatten(params)
    theirs = [torch.tensor(p, requires_grad=True) for p in leaves]
    reference = torch.optim.Adam(theirs, lr=lr, weight_decay=wd)  # betas (0.9, 0.999), eps 1e-8: optax's too
    for g in grads:
        for p, gradient in zip(theirs, jax.tree.leaves(g)):
            p.grad = torch.tensor(gradient)
        reference.step()
    theirs = jax.tree.unflatten(treedef, [p.detach().numpy() for p in theirs])

    # Both compute m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) in float32, in other orders: a few ulp of
    # a step of at most ~lr per update, so 6 steps differ by ~1e-7 (1e-6 allowed). The decay being tested
    # moves a step by lr * wd * |p| / sqrt(v) ~ 1e-3 per update: an undecayed bias or scale misses by far more.
    for path, expected in jax.tree_util.tree_leaves_with_path(theirs):
        got = dict(jax.tree_util.tree_leaves_with_path(ours))[path]
        np.testing.assert_allclose(np.asarray(got), expected, atol=1e-6, rtol=0, err_msg=jax.tree_util.keystr(path))
