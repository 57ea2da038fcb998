"""Dropout with 16-bit coins (mer_jax/layers/dropout.py) against the statistics dropout must have."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mer_jax.layers.dropout import Dropout, coins


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5])
def test_drops_the_rate_and_keeps_the_expectation(rate):
    dropout = Dropout(rate, rngs=nnx.Rngs(dropout=0))
    x = jnp.full((64, 257, 31), 2.0)  # odd sizes: the last halved draw is cut
    out = np.asarray(dropout(x))
    dropped = (out == 0).mean()
    sigma = np.sqrt(rate * (1 - rate) / out.size)
    assert abs(dropped - rate) < 5 * sigma + 1 / 65536
    assert abs(out.mean() - 2.0) < 5 * 2.0 * np.sqrt(rate / (1 - rate) / out.size)
    kept = out[out != 0]
    np.testing.assert_allclose(kept, 2.0 / (1 - round(rate * 65536) / 65536), rtol=1e-6)


def test_coins_are_uniform_and_the_two_halves_of_a_draw_independent():
    values = np.asarray(coins(jax.random.key(0), (400, 1000))).astype(np.int64)
    assert values.min() >= 0 and values.max() < 65536
    counts = np.bincount(values.ravel() >> 12, minlength=16)  # 16 bins of 25000 expected
    chi2 = ((counts - values.size / 16) ** 2 / (values.size / 16)).sum()
    assert chi2 < 50  # 15 degrees of freedom: p < 1e-5 above 50
    low, high = values[:, 0::2].ravel(), values[:, 1::2].ravel()  # the two halves of the same draws
    assert abs(np.corrcoef(low, high)[0, 1]) < 0.01
    assert abs(np.corrcoef(values[:, :-1].ravel(), values[:, 1:].ravel())[0, 1]) < 0.01


def test_new_mask_every_call_and_identity_in_evaluation():
    dropout = Dropout(0.5, rngs=nnx.Rngs(dropout=1))
    x = jnp.ones((8, 16))
    first, second = dropout(x), dropout(x)
    assert not np.array_equal(first, second)
    dropout.eval()
    np.testing.assert_array_equal(dropout(x), x)


def test_broadcast_dimensions_take_the_library_path():
    dropout = Dropout(0.5, broadcast_dims=(1,), rngs=nnx.Rngs(dropout=2))
    out = np.asarray(dropout(jnp.ones((6, 5, 4))))
    assert (out == out[:, :1]).all()  # one mask shared along the broadcast axis
