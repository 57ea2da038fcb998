"""Masked temporal pooling over the real (non-padded) steps of a sequence: the average, and the
statistics pooling of x-vectors (Snyder et al., 2018), mean and standard deviation side by side."""

import jax
import jax.numpy as jnp


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    """(B, T, D), (B, T) bool -> (B, D) mean over the steps where mask is True."""
    mask = mask.astype(x.dtype)[..., None]
    return (x * mask).sum(axis=1) / jnp.maximum(mask.sum(axis=1), 1.0)


def masked_mean_std(x: jax.Array, mask: jax.Array) -> jax.Array:
    """(B, T, D), (B, T) bool -> (B, 2D): the mean and the standard deviation over the real steps, concatenated
    (statistics pooling: how much a state varies through the utterance, not only its average)."""
    mean = masked_mean(x, mask)
    variance = masked_mean(jnp.square(x - mean[:, None]), mask)
    return jnp.concatenate([mean, jnp.sqrt(variance + 1e-5)], axis=-1)  # eps: a finite gradient at zero spread


def length_mask(lengths: jax.Array, time: int) -> jax.Array:
    """(B,) lengths -> (B, T) bool mask of the real steps."""
    return jnp.arange(time)[None, :] < lengths[:, None]
