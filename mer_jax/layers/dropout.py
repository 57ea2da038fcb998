"""Dropout whose keep/drop coins are 16-bit: each 32-bit draw of the random generator masks two
elements instead of one."""

import jax
import jax.numpy as jnp
from flax import nnx

_LEVELS = 1 << 16


class Dropout(nnx.Dropout):
    """`nnx.Dropout` (same fields, same `dropout` random stream) that draws its mask from half as many
    random bits: element i is dropped when its 16-bit coin is below round(rate x 65536), and kept ones
    are scaled by 1 / (1 - that threshold / 65536), so the output's expectation equals the input
    exactly; the drop probability is `rate` to within 1/65536.

    Why: on a CPU, JAX's counter-based threefry generator costs more than the rest of dropout; a
    quarter of wav2vec2-base's training step on the project's 2-core CPU (benchmarks/README.md).
    Halving the bits halves that. Broadcast dimensions and an explicit `rngs` argument take the
    library's path.
    """

    def __call__(self, inputs, *, deterministic=None, rngs=None):
        deterministic = self.deterministic if deterministic is None else deterministic
        if deterministic or self.rate == 0.0 or self.rate == 1.0 or self.broadcast_dims or rngs is not None:
            return super().__call__(inputs, deterministic=deterministic, rngs=rngs)
        threshold = round(self.rate * _LEVELS)
        keep = coins(self.rngs(), inputs.shape) >= threshold
        return jnp.where(keep, inputs / jnp.asarray(1.0 - threshold / _LEVELS, inputs.dtype), jnp.zeros_like(inputs))


def coins(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Uniform integers in [0, 65536) of `shape` (uint32), two from each 32-bit random draw: the low
    and high halves of draws over the last axis halved (rounded up)."""
    *lead, last = shape if shape else (1,)
    bits = jax.random.bits(key, (*lead, (last + 1) // 2), jnp.uint32)
    halves = jnp.stack([bits & 0xFFFF, bits >> 16], axis=-1).reshape(*lead, -1)
    return halves[..., :last].reshape(shape)
