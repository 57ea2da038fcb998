"""Bidirectional LSTM over padded frame sequences (the dynamic-fusion paper's Eq. 1).

Accelerator-friendly: the input projections of all frames and both directions are one matmul
outside the recurrence; inside `nnx.scan` only the recurrent matmul remains, and both directions
advance in the same step (the backward direction reads the frames in reverse order). Padded frames
are masked in both directions: the state does not change on them and their outputs are zero, so the
backward direction of a sequence of length n starts at frame n-1, exactly as PyTorch's
`pack_padded_sequence` does. Gates are ordered (input, forget, cell, output) like PyTorch's LSTM.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mer_jax.layers.pooling import length_mask


class _Recurrence(nnx.Module):
    """The recurrent weights of both directions: h_{t-1} -> 4 gate pre-activations."""

    def __init__(self, hidden: int, rngs: nnx.Rngs):
        init = jax.nn.initializers.orthogonal()
        self.kernel = nnx.Param(jnp.stack([init(rngs.params(), (hidden, 4 * hidden)) for _ in range(2)]))

    def __call__(self, carry, inputs):
        (h, c), (gate_inputs, mask) = carry, inputs  # h, c: (2, B, H); gate_inputs: (2, B, 4H); mask: (2, B, 1)
        gates = gate_inputs + jnp.einsum("dbh,dhg->dbg", h, self.kernel[...])
        i, f, g, o = jnp.split(gates, 4, axis=-1)
        c_new = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h_new = jax.nn.sigmoid(o) * jnp.tanh(c_new)
        h, c = jnp.where(mask, h_new, h), jnp.where(mask, c_new, c)
        return (h, c), h * mask


class BiLSTM(nnx.Module):
    """(B, T, D) frames and (B,) lengths -> (B, T, 2 * hidden) outputs, [forward; backward]."""

    def __init__(self, in_features: int, hidden: int, *, rngs: nnx.Rngs):
        self.hidden = hidden
        self.input_kernel = nnx.Param(jax.nn.initializers.glorot_uniform()(rngs.params(), (in_features, 2 * 4 * hidden)))
        # Forget-gate bias 1: the usual start that lets gradients flow through long sequences.
        bias = jnp.zeros((2, 4, hidden)).at[:, 1].set(1.0)
        self.bias = nnx.Param(bias.reshape(2 * 4 * hidden))
        self.recurrence = _Recurrence(hidden, rngs)

    def __call__(self, x: jax.Array, lengths: jax.Array) -> jax.Array:
        batch, time, _ = x.shape
        mask = length_mask(lengths, time)  # (B, T)
        gate_inputs = (x @ self.input_kernel[...] + self.bias[...]).reshape(batch, time, 2, 4 * self.hidden)
        gate_inputs = jnp.stack([gate_inputs[:, :, 0], gate_inputs[:, ::-1, 1]], axis=0)  # (2, B, T, 4H)
        step_mask = jnp.stack([mask, mask[:, ::-1]], axis=0)[..., None]  # (2, B, T, 1)
        xs = (jnp.moveaxis(gate_inputs, 2, 0), jnp.moveaxis(step_mask, 2, 0))  # time-major
        zeros = jnp.zeros((2, batch, self.hidden), x.dtype)

        @nnx.scan(in_axes=(None, nnx.Carry, 0), out_axes=(nnx.Carry, 0))
        def run(recurrence, carry, inputs):
            return recurrence(carry, inputs)

        _, outputs = run(self.recurrence, (zeros, zeros), xs)  # (T, 2, B, H)
        forward, backward = outputs[:, 0], outputs[::-1, 1]
        return jnp.moveaxis(jnp.concatenate([forward, backward], axis=-1), 0, 1)

    def torch_state_dict(self) -> dict[str, np.ndarray]:
        """The weights as PyTorch's `nn.LSTM(bidirectional=True, batch_first=True)` names and lays them
        out (its hidden-to-hidden bias is zero here), for parity checks and for users moving to PyTorch."""
        kernel = np.asarray(self.input_kernel[...]).reshape(-1, 2, 4 * self.hidden)
        bias = np.asarray(self.bias[...]).reshape(2, 4 * self.hidden)
        recurrent = np.asarray(self.recurrence.kernel[...])
        weights = {}
        for d, suffix in enumerate(["", "_reverse"]):
            weights[f"weight_ih_l0{suffix}"] = kernel[:, d].T
            weights[f"weight_hh_l0{suffix}"] = recurrent[d].T
            weights[f"bias_ih_l0{suffix}"] = bias[d]
            weights[f"bias_hh_l0{suffix}"] = np.zeros_like(bias[d])
        return weights
