"""Masked temporal average pooling: the mean over the real (non-padded) steps of a sequence."""

import jax
import jax.numpy as jnp


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    """(B, T, D), (B, T) bool -> (B, D) mean over the steps where mask is True."""
    mask = mask.astype(x.dtype)[..., None]
    return (x * mask).sum(axis=1) / jnp.maximum(mask.sum(axis=1), 1.0)


def length_mask(lengths: jax.Array, time: int) -> jax.Array:
    """(B,) lengths -> (B, T) bool mask of the real steps."""
    return jnp.arange(time)[None, :] < lengths[:, None]
