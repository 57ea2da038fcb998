"""``model.init = "torch"``: our layers start as PyTorch's freshly built modules of the same shapes do
(the oracle: torch's own default initialisers), and pretrained encoder weights stay as loaded."""

import jax
import numpy as np
import pytest
import torch
from flax import nnx
from scipy import stats

from mer_jax.config import base_config
from mer_jax.encoders import from_pretrained
from mer_jax.layers.batch_norm import MaskedBatchNorm
from mer_jax.layers.bilstm import BiLSTM
from mer_jax.layers.dense import Dense
from mer_jax.layers.torch_init import torch_init
from mer_jax.models.registry import build_model
from test_speech_branch import _speech_config, checkpoint  # noqa: F401 (the tiny wav2vec2 checkpoint fixture)

transformers = pytest.importorskip("transformers")


def _ours(module):
    torch_init(module, nnx.Rngs(params=0))
    return module


def _same_distribution(ours, theirs, bound):
    """Ours and torch's values: within the same bound and reaching it, the same std, and a two-sample
    Kolmogorov-Smirnov test that cannot tell them apart."""
    ours, theirs = np.ravel(np.asarray(ours)), np.ravel(theirs.detach().numpy())
    assert np.abs(ours).max() <= bound and np.abs(theirs).max() <= bound
    # n >= 20000 draws: the largest |value| lies within bound * (1 - 1e-3) of the bound almost surely
    assert np.abs(ours).max() > 0.99 * bound
    # std's relative standard error at n >= 20000 is below 0.6%: 3% is 5 of them
    assert np.std(ours) == pytest.approx(np.std(theirs), rel=0.03)
    assert stats.ks_2samp(ours, theirs).pvalue > 1e-3


def test_dense_is_nn_linear():
    ours = _ours(Dense(300, 200, rngs=nnx.Rngs(0)))
    theirs = torch.nn.Linear(300, 200)
    bound = 1 / np.sqrt(300)
    _same_distribution(ours.kernel[...], theirs.weight, bound)
    bias = np.asarray(ours.bias[...])  # 200 draws: within the bound, its extremes near it, not Flax's zeros
    assert np.abs(bias).max() <= bound and np.abs(bias).max() > 0.9 * bound
    assert stats.ks_2samp(bias, theirs.bias.detach().numpy()).pvalue > 1e-3
    # Flax's own start (lecun_normal, std 1/sqrt(fan_in)) is what the test tells apart: sqrt(3) x wider
    flax = np.asarray(Dense(300, 200, rngs=nnx.Rngs(0)).kernel[...])
    assert np.std(flax) / np.std(theirs.weight.detach().numpy()) == pytest.approx(np.sqrt(3), rel=0.03)


def test_grouped_conv_is_nn_conv1d():
    ours = _ours(nnx.Conv(64, 128, kernel_size=5, feature_group_count=2, rngs=nnx.Rngs(0)))
    theirs = torch.nn.Conv1d(64, 128, 5, groups=2)
    bound = 1 / np.sqrt(64 / 2 * 5)  # fan_in = in_channels / groups x kernel
    _same_distribution(ours.kernel[...], theirs.weight, bound)
    assert np.abs(np.asarray(ours.bias[...])).max() <= bound


def test_bilstm_is_nn_lstm():
    hidden = 128
    ours = _ours(BiLSTM(40, hidden, rngs=nnx.Rngs(0)))
    theirs = torch.nn.LSTM(40, hidden, bidirectional=True, batch_first=True)
    weights = ours.torch_state_dict()
    k = 1 / np.sqrt(hidden)
    for name in ("weight_ih", "weight_hh"):
        _same_distribution(np.concatenate([weights[f"{name}_l0"].ravel(), weights[f"{name}_l0_reverse"].ravel()]),
                           torch.cat([getattr(theirs, f"{name}_l0").ravel(), getattr(theirs, f"{name}_l0_reverse").ravel()]),
                           k)
    # our one bias is torch's b_ih + b_hh: 1024 draws of the sum of two U(-k, k), triangular on +-2k
    bias = np.concatenate([weights["bias_ih_l0"], weights["bias_ih_l0_reverse"]])
    summed = torch.cat([theirs.bias_ih_l0 + theirs.bias_hh_l0, theirs.bias_ih_l0_reverse + theirs.bias_hh_l0_reverse])
    assert np.abs(bias).max() <= 2 * k
    assert np.std(bias) == pytest.approx(np.sqrt(2 / 3) * k, rel=0.1)  # 1024 draws: 10% is 4 standard errors
    assert stats.ks_2samp(bias, summed.detach().numpy()).pvalue > 1e-3
    assert np.std(bias) == pytest.approx(np.std(summed.detach().numpy()), rel=0.1)


def test_embedding_is_nn_embedding():
    ours = _ours(nnx.Embed(1000, 64, rngs=nnx.Rngs(0)))
    theirs = torch.nn.Embedding(1000, 64)
    table = np.asarray(ours.embedding[...])
    assert np.std(table) == pytest.approx(np.std(theirs.weight.detach().numpy()), rel=0.03)
    assert abs(table.mean()) < 0.02  # 64000 draws of N(0, 1): the mean's standard error is 0.004
    assert stats.ks_2samp(table.ravel(), theirs.weight.detach().numpy().ravel()).pvalue > 1e-3


def test_norms_are_ones_and_zeros():
    layer_norm, batch_norm = nnx.LayerNorm(8, rngs=nnx.Rngs(0)), MaskedBatchNorm(8)
    for ours in (layer_norm, batch_norm):
        ours.scale[...], ours.bias[...] = ours.scale[...] * 3, ours.bias[...] + 2  # as if trained
        _ours(ours)
    for ours, theirs in ((layer_norm, torch.nn.LayerNorm(8)), (batch_norm, torch.nn.BatchNorm1d(8))):
        np.testing.assert_array_equal(ours.scale[...], theirs.weight.detach().numpy())
        np.testing.assert_array_equal(ours.bias[...], theirs.bias.detach().numpy())


def _params(model):
    return {jax.tree_util.keystr(p): np.asarray(v) for p, v in
            jax.tree_util.tree_leaves_with_path(nnx.to_pure_dict(nnx.state(model, nnx.Param)))}


def test_every_lpgnet_parameter_starts_as_torch_and_seeded():
    config = base_config("lpgnet")
    config.model.hidden = 32
    sizes = {"num_classes": 4, "text_dim": 48, "audio_dim": 40}
    flax = _params(build_model(config, sizes, seed=0))
    config.model.init = "torch"
    ours = _params(build_model(config, sizes, seed=0))
    assert _params(build_model(config, sizes, seed=0)).keys() == ours.keys()
    for name, value in _params(build_model(config, sizes, seed=0)).items():
        np.testing.assert_array_equal(value, ours[name])  # seeded: the same seed draws the same start
    other = _params(build_model(config, sizes, seed=1))
    fan_in = {"projections']['text": 48, "projections']['audio": 40, "branch_fusion": 64}  # the rest: hidden, 32
    for name, value in ours.items():
        if "norm" in name:  # LayerNorm, batch norm: ones and zeros, as Flax's
            np.testing.assert_array_equal(value, flax[name])
            continue
        assert not np.array_equal(value, flax[name]) and not np.array_equal(value, other[name]), name
        bound = 1 / np.sqrt(next((n for key, n in fan_in.items() if key in name), 32))
        assert np.abs(value).max() <= bound, name


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    """A small random BERT checkpoint folder, as the hub has one."""
    folder = tmp_path_factory.mktemp("bert") / "tiny-bert"
    torch.manual_seed(0)
    transformers.BertModel(transformers.BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2,
                                                   num_attention_heads=4, intermediate_size=48)).save_pretrained(folder)
    return folder


def test_pretrained_encoders_keep_their_checkpoint_weights(bert, checkpoint):  # noqa: F811
    speech, _ = checkpoint
    config = _speech_config(speech)
    config.text.encoder = str(bert)
    config.model.init = "torch"
    sizes = {"num_classes": 4, "vocab_size": 60}
    ours = _params(build_model(config, sizes))
    loaded = {"text_encoder": from_pretrained(str(bert))[0], "speech_encoder": from_pretrained(str(speech))[0]}
    config.model.init = "flax"
    flax = _params(build_model(config, sizes))
    for module, encoder in loaded.items():
        weights = _params(encoder)
        inside = {name: value for name, value in ours.items() if f"'{module}'" in name}
        assert len(inside) == len(weights) > 0
        for name, value in inside.items():
            np.testing.assert_array_equal(value, weights[name[name.index(f"['{module}']") + len(f"['{module}']"):]])
    for name in ("['text_projection']['kernel']", "['speech_projection']['kernel']", "['classifier']['bias']"):
        assert not np.array_equal(ours[name], flax[name])
        assert np.abs(ours[name]).max() <= 1 / np.sqrt(ours[name.replace("bias", "kernel")].shape[0])


@pytest.mark.parametrize("name", ["dynamic_fusion", "lpgnet_frame", "linear"])
def test_every_model_starts_as_torch_with_a_small_transformer_and_bilstm(name):
    """Every parameter of every model, the small text Transformer's included (it is trained from scratch),
    has a PyTorch initialiser (an unknown random one would raise) and moves off Flax's start."""
    config = base_config(name)
    config.model.update({"dynamic_fusion": {"d_model": 32}, "lpgnet_frame": {"hidden": 16, "length": 20}}.get(name, {}))
    config.text.update(hidden=32, layers=1)
    sizes = {"num_classes": 4, "vocab_size": 50, "text_dim": 24, "audio_dim": 16}
    flax = _params(build_model(config, sizes))
    config.model.init = "torch"
    ours = _params(build_model(config, sizes))
    moved = {n for n in ours if not np.array_equal(ours[n], flax[n])}
    assert moved == {n for n in ours if "norm" not in n}  # norms start at ones and zeros either way
    if name == "dynamic_fusion":
        assert np.std(ours["['text_encoder']['token_embedding']['embedding']"]) == pytest.approx(1.0, rel=0.1)
