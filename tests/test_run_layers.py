"""The encoders' layer scan (training mode) against calling the same layers one by one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mer_jax import encoders
from mer_jax.encoders.layers import run_layers

from float32 import SCALE_TOLERANCE, assert_float32_close

BERT = dict(model_type="bert", vocab_size=50, hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
            intermediate_size=24, hidden_act="gelu", hidden_dropout_prob=0.3, attention_probs_dropout_prob=0.3,
            max_position_embeddings=16, type_vocab_size=2, layer_norm_eps=1e-12, initializer_range=0.5,
            pad_token_id=0)
WAVLM = dict(model_type="wavlm", hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=24,
             conv_dim=(8, 8), conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=4,
             num_conv_pos_embedding_groups=2, num_buckets=8, max_bucket_distance=10, hidden_dropout=0.3,
             attention_dropout=0.3, activation_dropout=0.3, layerdrop=0.0)


def one_by_one(layers, x, call, per_layer=None):
    outputs = []
    for i, layer in enumerate(layers):
        x = call(layer, x, None if per_layer is None else per_layer[i])
        outputs.append(x)
    return x, outputs


def layers_and_call(family):
    """An encoder's layer list in training mode, an input, and the call its encoder makes per layer."""
    rng = np.random.default_rng(0)
    if family == "bert":
        encoder = encoders.from_config(BERT, rngs=nnx.Rngs(0))
        mask = jnp.asarray(np.arange(12)[None] < np.array([[12], [7]]))
        x = jnp.asarray(rng.normal(size=(2, 12, 16)), jnp.float32)
        return encoder.layers, x, lambda layer, x, _: layer(x, mask)
    encoder = encoders.from_config(WAVLM, rngs=nnx.Rngs(0))
    mask = jnp.asarray(np.arange(10)[None] < np.array([[10], [6]]))
    context = encoder.attention_context(10)
    x = jnp.asarray(rng.normal(size=(2, 10, 16)), jnp.float32)
    return encoder.encoder.layers, x, lambda layer, x, _: layer(x, mask, **context)


@pytest.mark.parametrize("family", ["bert", "wavlm"])  # WavLM: a first layer unlike the rest, then a scan
def test_scan_equals_calling_layers_one_by_one_with_dropout(family):
    layers, x, call = layers_and_call(family)
    twin = nnx.clone(layers)
    nnx.reseed(layers, dropout=3)
    nnx.reseed(twin, dropout=3)

    scanned, scanned_outputs = run_layers(layers, x, call)
    expected, expected_outputs = one_by_one(twin, x, call)
    # two XLA programs (a scan and separate calls): equal up to rounding relative to the values' scale
    assert_float32_close(scanned, expected)
    for ours, theirs in zip(scanned_outputs, expected_outputs, strict=True):
        assert_float32_close(ours, theirs)
    # Each layer's dropout stream advanced as if it ran alone, so the next call draws new masks too.
    for ours, theirs in zip(jax.tree.leaves(nnx.state(layers, nnx.RngCount)),
                            jax.tree.leaves(nnx.state(twin, nnx.RngCount)), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    again, _ = run_layers(layers, x, call)
    assert not np.allclose(again, scanned)


def test_scan_gradients_equal_the_unrolled_ones():
    layers, x, call = layers_and_call("bert")
    graph, params, rest = nnx.split(layers, nnx.Param, ...)
    probe = jnp.asarray(np.random.default_rng(1).normal(size=x.shape), jnp.float32)  # LayerNorm'd sum(h^2) is flat

    def loss(params, run):
        model = nnx.merge(graph, params, jax.tree.map(jnp.copy, rest))
        nnx.reseed(model, dropout=5)
        return jnp.sum(run(model, x, call)[0] * probe)

    ours = jax.grad(loss)(params, run_layers)
    theirs = jax.grad(loss)(params, one_by_one)
    largest = max(np.abs(b).max() for b in jax.tree.leaves(theirs))
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        # each gradient at its own scale; the key biases' is zero (softmax is shift-invariant), so theirs
        # is rounding, at the scale of all the gradients
        np.testing.assert_allclose(a, b, rtol=0, atol=SCALE_TOLERANCE * max(np.abs(b).max(), 1e-2 * largest))


def test_evaluation_runs_the_layers_one_by_one():
    layers, x, call = layers_and_call("bert")
    for layer in layers:
        layer.eval()
    lowered = jax.jit(lambda x: run_layers(layers, x, call)[0]).lower(x).as_text()
    assert "while" not in lowered
