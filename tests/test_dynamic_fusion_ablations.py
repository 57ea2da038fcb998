"""The dynamic-fusion paper's ablation switches (Tables 1-2, Section 4.5), each against a hand computation
from the model's own weights: mean-pooled MFCC without temporal modelling, concatenation instead of
cross-modal attention, and K/V projections shared with the text branch; and statistics pooling of the
audio frames (mean and standard deviation)."""

import jax
import numpy as np
import pytest
from flax import nnx

from mer_jax.config import base_config, validate
from mer_jax.models.registry import build_model
from test_dynamic_fusion import _batch


def _model(**switches):
    c = base_config()
    c.model.update(d_model=16, num_heads=2, dropout=0.0, **switches)
    c.text.update(hidden=16, heads=2, layers=1)
    c.features.max_tokens = 8
    validate(c)
    model = build_model(c, {"num_classes": 6, "vocab_size": 30})
    model.eval()
    return model


def _dense(layer, x):
    return x @ np.asarray(layer.kernel[...]) + (0.0 if layer.bias is None else np.asarray(layer.bias[...]))


def _standardised(model, batch):
    return (batch["mfcc"] - np.asarray(model.feature_norm.mean[...])) / np.asarray(model.feature_norm.std[...])


def _real(lengths, size):
    return (np.arange(size)[None] < np.asarray(lengths)[:, None]).astype(np.float32)


def _mean(x, mask):
    return (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)


def _text_states(model, batch):
    encoded = np.asarray(model.text_encoder(batch["input_ids"], batch["attention_mask"]).last_hidden_state)
    return _dense(model.text_projection, encoded)


def _classify(model, pooled):
    return _dense(model.classifier, np.maximum(_dense(model.hidden, pooled), 0.0))


def test_mean_audio_encoder_is_the_projected_mean_mfcc():
    model = _model(modalities="audio", audio_encoder="mean")
    model.feature_norm.set_statistics(np.random.default_rng(1).normal(2.0, 3.0, size=(500, 40)).astype(np.float32))
    batch = _batch(np.random.default_rng(0))
    out = model(batch)
    mean_mfcc = _mean(_standardised(model, batch), _real(batch["mfcc_length"], 20))
    np.testing.assert_allclose(out["audio_mean"], _dense(model.frame_projection, mean_mfcc), atol=1e-5)
    np.testing.assert_allclose(out["logits"], _classify(model, out["audio_mean"]), atol=1e-5)
    assert not hasattr(model, "bilstm")


@pytest.mark.parametrize("audio_encoder", ["bilstm", "mean"])
def test_concat_fusion_classifies_the_two_pooled_vectors(audio_encoder):
    model = _model(fusion="concat", audio_encoder=audio_encoder)
    batch = _batch(np.random.default_rng(2))
    out = model(batch)
    text = _mean(_text_states(model, batch), batch["attention_mask"].astype(np.float32))
    pooled = np.concatenate([np.asarray(out["audio_mean"]), text], axis=-1)
    np.testing.assert_allclose(out["logits"], _classify(model, pooled), atol=1e-5)
    assert "attention" not in out and not hasattr(model, "cross_attention")


def test_shared_kv_attends_over_the_text_branch_states_themselves():
    model = _model(share_kv=True)
    batch = _batch(np.random.default_rng(3))
    out = model(batch)
    attention = model.cross_attention
    assert attention.key is None and attention.value is None
    audio = np.asarray(model.bilstm(model.feature_norm(batch["mfcc"]), batch["mfcc_length"]))
    text = _text_states(model, batch)
    q = _dense(attention.query, audio).reshape(4, 20, 2, 8)
    kv = text.reshape(4, 8, 2, 8)
    scores = np.einsum("bqhd,bkhd->bhqk", q, kv) / np.sqrt(8)
    scores = np.where(batch["attention_mask"][:, None, None, :] > 0, scores, -np.inf)
    weights = np.asarray(jax.nn.softmax(scores, axis=-1))
    np.testing.assert_allclose(out["attention"], weights, atol=1e-5)
    attended = _dense(attention.out, np.einsum("bhqk,bkhd->bqhd", weights, kv).reshape(4, 20, 16))
    fused = np.asarray(model.fusion_norm(audio + attended))
    pooled = _mean(fused, _real(batch["mfcc_length"], 20))
    np.testing.assert_allclose(out["logits"], _classify(model, pooled), atol=1e-4)
    params = lambda m: sum(x.size for x in jax.tree.leaves(nnx.state(m, nnx.Param)))  # noqa: E731
    assert params(_model()) - params(model) == 2 * 16 * 16 + 16  # W_k (no bias), W_v and its bias


def _mean_std(x, mask):
    mean = _mean(x, mask)
    return np.concatenate([mean, np.sqrt(_mean((x - mean[:, None]) ** 2, mask) + 1e-5)], axis=-1)


@pytest.mark.parametrize("modalities, fusion", [("audio", "cross_attention"), ("audio+text", "concat"),
                                                ("audio+text", "cross_attention")])
def test_statistics_pooling_classifies_the_mean_and_spread_of_the_audio_frames(modalities, fusion):
    model = _model(modalities=modalities, fusion=fusion, audio_pooling="stats")
    batch = _batch(np.random.default_rng(4))
    out = model(batch)
    real = _real(batch["mfcc_length"], 20)
    audio = np.asarray(model.bilstm(model.feature_norm(batch["mfcc"]), batch["mfcc_length"]))
    np.testing.assert_allclose(out["audio_mean"], _mean(audio, real), atol=1e-5)  # LPGNet's vector stays the mean
    if fusion == "cross_attention" and modalities == "audio+text":
        audio = np.asarray(model.fusion_norm(audio + np.asarray(model.cross_attention(
            audio, _text_states(model, batch), batch["attention_mask"] > 0)[0])))
    pooled = _mean_std(audio, real)
    if fusion == "concat":
        text = _mean(_text_states(model, batch), batch["attention_mask"].astype(np.float32))
        pooled = np.concatenate([pooled, text], axis=-1)
    assert pooled.shape[-1] == model.hidden.in_features
    np.testing.assert_allclose(out["logits"], _classify(model, pooled), atol=1e-4)


@pytest.mark.parametrize("override, message", [
    ({"audio_encoder": "cnn"}, "model.audio_encoder"), ({"fusion": "sum"}, "model.fusion"),
    ({"share_kv": True, "fusion": "concat"}, "model.share_kv"), ({"audio_pooling": "max"}, "model.audio_pooling"),
    ({"audio_pooling": "stats", "modalities": "text"}, "model.audio_pooling"),
    ({"audio_pooling": "stats", "query": "pooled"}, "model.audio_pooling")])
def test_bad_switches_are_refused_naming_the_field(override, message):
    with pytest.raises(ValueError, match=message):
        _model(**override)
