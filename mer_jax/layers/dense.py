"""A dense layer over the last axis that multiplies as one 2-D matrix product."""

import jax
from flax import nnx


class Dense(nnx.Linear):
    """`nnx.Linear` (same parameters, names and initialisers) whose inputs of more than two axes are
    flattened to (rows, features) around the product, a free reshape.

    Why: for a (B, T, D) input the kernel's gradient contracts two axes at once, and XLA's CPU backend
    then copies the activations and the incoming gradient into transposed buffers before multiplying;
    as one (B*T, D) product it multiplies in place. bert-base forward+backward on the 2-core CPU: about
    5-8% faster (benchmarks/README.md, issue 13).
    """

    def __call__(self, inputs: jax.Array, out_sharding=None) -> jax.Array:
        if inputs.ndim <= 2:
            return super().__call__(inputs, out_sharding=out_sharding)
        flat = super().__call__(inputs.reshape(-1, inputs.shape[-1]), out_sharding=out_sharding)
        return flat.reshape(*inputs.shape[:-1], flat.shape[-1])
