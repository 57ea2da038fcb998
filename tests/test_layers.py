"""BiLSTM and attention against PyTorch (weights copied across), pooling against a hand computation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from mer_jax.layers.attention import MultiHeadAttention
from mer_jax.layers.bilstm import BiLSTM
from mer_jax.layers.dense import Dense
from mer_jax.layers.pooling import masked_mean, masked_mean_std

from float32 import assert_float32_close


def _copy_lstm_weights(flax_lstm: BiLSTM, torch_lstm: torch.nn.LSTM):
    torch_lstm.load_state_dict({k: torch.tensor(v) for k, v in flax_lstm.torch_state_dict().items()})


@pytest.mark.parametrize("lengths", [[9, 9, 9], [9, 4, 1], [2, 7, 5]])
def test_bilstm_matches_pytorch_packed_sequences(lengths):
    batch, time, features, hidden = len(lengths), 9, 6, 5
    ours = BiLSTM(features, hidden, rngs=nnx.Rngs(0))
    reference = torch.nn.LSTM(features, hidden, batch_first=True, bidirectional=True)
    _copy_lstm_weights(ours, reference)
    x = np.random.default_rng(0).normal(size=(batch, time, features)).astype(np.float32)
    out = np.asarray(ours(jnp.asarray(x), jnp.asarray(lengths)))
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(x), torch.tensor(lengths), batch_first=True,
                                                     enforce_sorted=False)
    expected, _ = reference(packed)
    expected, _ = torch.nn.utils.rnn.pad_packed_sequence(expected, batch_first=True, total_length=time)
    np.testing.assert_allclose(out, expected.detach().numpy(), atol=1e-5)


@pytest.mark.parametrize("lengths", [[9, 4, 1], [2, 7, 5]])
def test_bilstm_gradients_match_pytorch_packed_sequences(lengths):
    """Gradients of a weighted sum of the outputs, for the frames and every weight, as PyTorch's."""
    batch, time, features, hidden = len(lengths), 9, 6, 5
    ours = BiLSTM(features, hidden, rngs=nnx.Rngs(2))
    reference = torch.nn.LSTM(features, hidden, batch_first=True, bidirectional=True)
    _copy_lstm_weights(ours, reference)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(batch, time, features)).astype(np.float32)
    weights = rng.normal(size=(batch, time, 2 * hidden)).astype(np.float32)

    def loss(model, frames):
        return (model(frames, jnp.asarray(lengths)) * weights).sum()

    grads, x_grad = nnx.grad(loss, argnums=(0, 1))(ours, jnp.asarray(x))
    frames = torch.tensor(x, requires_grad=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(frames, torch.tensor(lengths), batch_first=True,
                                                     enforce_sorted=False)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(reference(packed)[0], batch_first=True, total_length=time)
    (out * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(x_grad, frames.grad.numpy(), atol=1e-5)
    torch_grads = {name: p.grad.numpy() for name, p in reference.named_parameters()}
    kernel = np.asarray(grads.input_kernel[...]).reshape(features, 2, -1)
    recurrent = np.asarray(grads.recurrence.kernel[...])
    for d, suffix in enumerate(["", "_reverse"]):
        np.testing.assert_allclose(kernel[:, d].T, torch_grads[f"weight_ih_l0{suffix}"], atol=1e-5)
        np.testing.assert_allclose(recurrent[d].T, torch_grads[f"weight_hh_l0{suffix}"], atol=1e-5)
        np.testing.assert_allclose(np.asarray(grads.bias[...]).reshape(2, -1)[d], torch_grads[f"bias_ih_l0{suffix}"],
                                   atol=1e-5)


def test_bilstm_ignores_what_is_in_the_padding():
    lstm = BiLSTM(3, 4, rngs=nnx.Rngs(1))
    x = np.random.default_rng(1).normal(size=(2, 8, 3)).astype(np.float32)
    noisy = x.copy()
    noisy[:, 5:] = 100.0
    lengths = jnp.array([5, 5])
    assert_float32_close(lstm(jnp.asarray(noisy), lengths), lstm(jnp.asarray(x), lengths))


def test_cross_attention_matches_pytorch_with_key_padding_mask():
    d, heads = 16, 4
    ours = MultiHeadAttention(d, heads, rngs=nnx.Rngs(0))
    ours.eval()
    reference = torch.nn.MultiheadAttention(d, heads, batch_first=True)
    with torch.no_grad():
        reference.in_proj_weight.copy_(torch.tensor(np.concatenate(
            [np.asarray(m.kernel[...]).T for m in (ours.query, ours.key, ours.value)])))
        reference.in_proj_bias.copy_(torch.tensor(np.concatenate(
            [np.asarray(ours.query.bias[...]), np.zeros(d, np.float32), np.asarray(ours.value.bias[...])])))
        reference.out_proj.weight.copy_(torch.tensor(np.asarray(ours.out.kernel[...]).T))
        reference.out_proj.bias.copy_(torch.tensor(np.asarray(ours.out.bias[...])))
    rng = np.random.default_rng(0)
    audio = rng.normal(size=(3, 7, d)).astype(np.float32)
    text = rng.normal(size=(3, 5, d)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], bool)
    out, weights = ours(jnp.asarray(audio), jnp.asarray(text), jnp.asarray(mask))
    expected, expected_weights = reference(torch.tensor(audio), torch.tensor(text), torch.tensor(text),
                                           key_padding_mask=torch.tensor(~mask), average_attn_weights=False)
    np.testing.assert_allclose(out, expected.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(weights, expected_weights.detach().numpy(), atol=1e-6)


def test_masked_mean_by_hand():
    x = jnp.array([[[1.0], [3.0], [100.0]], [[2.0], [4.0], [6.0]]])
    mask = jnp.array([[True, True, False], [True, True, True]])
    np.testing.assert_allclose(masked_mean(x, mask), [[2.0], [4.0]])


def test_statistics_pooling_by_hand():
    x = jnp.array([[[1.0, 0.0], [3.0, 0.0], [100.0, 9.0]], [[2.0, 1.0], [4.0, 1.0], [9.0, 1.0]]])
    mask = jnp.array([[True, True, False], [True, True, True]])
    # row 0: mean (2, 0), population variance (1, 0); row 1: mean (5, 1), variance (26/3, 0); the standard
    # deviation is sqrt(variance + 1e-5) (the epsilon keeps the gradient finite at zero spread)
    eps = 1e-5
    expected = [[2.0, 0.0, np.sqrt(1.0 + eps), np.sqrt(eps)], [5.0, 1.0, np.sqrt(26 / 3 + eps), np.sqrt(eps)]]
    np.testing.assert_allclose(masked_mean_std(x, mask), expected, rtol=1e-6)
    np.testing.assert_allclose(masked_mean_std(x, mask)[:, :2], masked_mean(x, mask))
    gradient = jax.grad(lambda x: masked_mean_std(x, mask).sum())(x)
    assert np.isfinite(gradient).all() and not np.asarray(gradient)[0, 2].any()  # padding gets no gradient


def test_dense_flattening_changes_neither_outputs_nor_gradients():
    dense, linear = Dense(6, 5, rngs=nnx.Rngs(0)), nnx.Linear(6, 5, rngs=nnx.Rngs(0))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 4, 6)), jnp.float32)
    assert_float32_close(dense(x), linear(x))  # two XLA programs (a 2-D and a 4-D product)
    assert dense(x[0, 0]).shape == (4, 5)  # 2-D inputs pass through unchanged
    grads = [nnx.grad(lambda m: jnp.sum(jnp.sin(m(x))))(m) for m in (dense, linear)]
    for ours, theirs in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1]), strict=True):
        assert_float32_close(ours, theirs)


@pytest.mark.parametrize("groups, stride, padding", [(4, 1, [(3, 2)]), (6, 2, "VALID"), (1, 1, "SAME")])
def test_grouped_conv_per_group_equals_one_grouped_convolution(groups, stride, padding):
    """On this CPU the grouped convolution runs group by group: same values and gradients as PyTorch's
    grouped Conv1d (the oracle) and as lax's single grouped convolution."""
    from mer_jax.layers.grouped_conv import conv_general_dilated  # noqa: PLC0415

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 23, 12)).astype(np.float32)
    kernel = rng.normal(size=(6, 12 // groups, 24)).astype(np.float32)
    weights = rng.normal(size=(2, (23 - 6 + (5 if padding != "VALID" else 0)) // stride + 1, 24)).astype(np.float32)
    numbers = ("NWC", "WIO", "NWC")

    def loss(conv, x, kernel):
        y = conv(x, kernel, (stride,), padding, dimension_numbers=numbers, feature_group_count=groups)
        return jnp.sum(y * weights[:, :y.shape[1]]), y

    (ours, y), ours_grad = jax.value_and_grad(loss, argnums=(1, 2), has_aux=True)(conv_general_dilated, x, kernel)
    (lax_value, lax_y), lax_grad = jax.value_and_grad(loss, argnums=(1, 2), has_aux=True)(
        jax.lax.conv_general_dilated, x, kernel)
    assert_float32_close(y, lax_y)  # two XLA programs: per-group convolutions and lax's grouped one
    for a, b in zip(ours_grad, lax_grad):
        assert_float32_close(a, b)
    if padding == [(3, 2)]:
        tx = torch.tensor(np.pad(x, ((0, 0), (3, 2), (0, 0))).transpose(0, 2, 1), requires_grad=True)
        tk = torch.tensor(kernel.transpose(2, 1, 0), requires_grad=True)
        ty = torch.nn.functional.conv1d(tx, tk, stride=stride, groups=groups).transpose(1, 2)
        np.testing.assert_allclose(y, ty.detach().numpy(), atol=1e-4)
        (ty * torch.tensor(weights[:, :ty.shape[1]])).sum().backward()
        np.testing.assert_allclose(ours_grad[1], tk.grad.numpy().transpose(2, 1, 0), atol=1e-4)
