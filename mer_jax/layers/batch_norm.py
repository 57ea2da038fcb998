"""Batch norm over real entries only, so that padding never moves its statistics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class MaskedBatchNorm(nnx.Module):
    """Batch norm over the feature axis of (..., d) at the positions where ``mask`` (...) is True, with
    PyTorch's conventions (LPGNet's dialogues, HuBERT's batch-normed positional convolution).

    Train mode normalises with the biased mean/variance of the real entries and moves the running
    averages by ``momentum`` (0.1, as torch) towards them, the variance unbiased (n / (n - 1)); a
    batch with no real entry leaves them unchanged. Eval mode (``use_running_average``, set by
    ``model.eval()``) normalises with the running averages, and so does a ``frozen`` norm (one of a
    frozen pretrained encoder) in both modes. Statistics are computed in float32.
    """

    def __init__(self, features: int, *, momentum: float = 0.1, epsilon: float = 1e-5,
                 use_running_average: bool = False):
        self.momentum, self.epsilon, self.use_running_average = momentum, epsilon, use_running_average
        self.frozen = False
        self.scale = nnx.Param(jnp.ones(features))
        self.bias = nnx.Param(jnp.zeros(features))
        self.mean = nnx.BatchStat(jnp.zeros(features))
        self.var = nnx.BatchStat(jnp.ones(features))

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        if self.use_running_average or self.frozen:
            mean, var = self.mean[...], self.var[...]
        else:
            axes = tuple(range(x.ndim - 1))
            real = mask.astype(bool)[..., None]
            count = real.sum()
            values = x.astype(jnp.float32)
            mean = jnp.where(real, values, 0.0).sum(axes) / jnp.maximum(count, 1)
            var = jnp.where(real, jnp.square(values - mean), 0.0).sum(axes) / jnp.maximum(count, 1)
            unbiased = var * count / jnp.maximum(count - 1, 1)
            m = self.momentum
            self.mean[...] = jnp.where(count > 0, (1 - m) * self.mean[...] + m * mean, self.mean[...])
            self.var[...] = jnp.where(count > 0, (1 - m) * self.var[...] + m * unbiased, self.var[...])
        y = (x.astype(jnp.float32) - mean) * jax.lax.rsqrt(var + self.epsilon) * self.scale[...] + self.bias[...]
        return y.astype(x.dtype)
