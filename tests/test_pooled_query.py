"""Dynamic fusion with ``model.query="pooled"``: the cross-modal attention's one query per utterance is the
mean of the audio states over real frames; it attends over the real text tokens only; the attended text
is added to it and layer-normalised, then the two-layer MLP classifies. Computed by hand in numpy from
the module's parameters and its branches' states (the BiLSTM and the text encoder are checked against
PyTorch elsewhere), on a padded batch: padded frames and tokens hold values that must not count."""

import jax.numpy as jnp
import numpy as np
import pytest

from mer_jax.config import base_config
from mer_jax.models.registry import build_model

HEADS, D = 2, 8


@pytest.fixture(scope="module")
def model_and_batch():
    config = base_config()
    config.model.update(query="pooled", d_model=D, num_heads=HEADS, dropout=0.3)
    config.text.update(hidden=12, layers=1, heads=2)
    config.features.max_tokens = 6
    model = build_model(config, {"num_classes": 4, "vocab_size": 30})
    rng = np.random.default_rng(0)
    model.feature_norm.set_statistics(rng.normal(1.0, 3.0, size=(50, 40)).astype(np.float32))
    model.eval()  # no dropout
    frame_lengths, token_lengths = np.array([7, 4, 1], np.int32), np.array([6, 3, 1])
    batch = {"mfcc": rng.normal(size=(3, 7, 40)).astype(np.float32), "mfcc_length": frame_lengths,
             "input_ids": rng.integers(1, 30, (3, 6)).astype(np.int32),
             "attention_mask": (np.arange(6)[None] < token_lengths[:, None]).astype(np.int32)}
    return model, batch


def numpy_params(module):
    return {name: np.asarray(getattr(module, name)[...], np.float64) for name in ("kernel", "bias")
            if getattr(module, name, None) is not None}


def test_pooled_query_by_hand(model_and_batch):
    model, batch = model_and_batch
    outputs = model({k: jnp.asarray(v) for k, v in batch.items()})
    # the branches' states, from the model's own modules
    frames = model.feature_norm(jnp.asarray(batch["mfcc"]))
    audio = np.asarray(model.bilstm(frames, jnp.asarray(batch["mfcc_length"])), np.float64)  # (B, T, D)
    tokens = np.asarray(model.text_encoder(jnp.asarray(batch["input_ids"]), jnp.asarray(batch["attention_mask"]),
                                           None).last_hidden_state, np.float64)  # (B, L, hidden)

    def dense(module, x):
        p = numpy_params(module)
        return x @ p["kernel"] + p.get("bias", 0.0)

    real_frames = np.arange(7)[None] < batch["mfcc_length"][:, None]
    real_tokens = batch["attention_mask"].astype(bool)
    query = (audio * real_frames[..., None]).sum(1) / real_frames.sum(1, keepdims=True)  # (B, D): one query each
    text = dense(model.text_projection, tokens)  # (B, L, D)
    attention = model.cross_attention
    q = dense(attention.query, query).reshape(3, HEADS, D // HEADS)
    k = dense(attention.key, text).reshape(3, 6, HEADS, D // HEADS)
    v = dense(attention.value, text).reshape(3, 6, HEADS, D // HEADS)
    logits = np.einsum("bhd,blhd->bhl", q, k) / np.sqrt(D // HEADS)
    logits = np.where(real_tokens[:, None, :], logits, -np.inf)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)  # (B, heads, L), zero on padded tokens
    attended = dense(attention.out, np.einsum("bhl,blhd->bhd", weights, v).reshape(3, D))
    residual = query + attended
    norm = model.fusion_norm
    mean, var = residual.mean(-1, keepdims=True), residual.var(-1, keepdims=True)
    fused = (residual - mean) / np.sqrt(var + norm.epsilon) * np.asarray(norm.scale[...]) + np.asarray(norm.bias[...])
    expected = dense(model.classifier, np.maximum(dense(model.hidden, fused), 0.0))

    assert outputs["attention"].shape == (3, HEADS, 1, 6)  # one query per utterance
    np.testing.assert_allclose(np.asarray(outputs["attention"])[:, :, 0], weights, atol=1e-6)
    np.testing.assert_allclose(np.asarray(outputs["logits"]), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(outputs["hidden"]), np.maximum(dense(model.hidden, fused), 0.0),
                               rtol=1e-5, atol=1e-6)


def test_padding_content_changes_nothing(model_and_batch):
    """What padded frames and tokens hold reaches neither the query nor the attention."""
    model, batch = model_and_batch
    noisy = {k: v.copy() for k, v in batch.items()}
    real_frames = np.arange(7)[None] < batch["mfcc_length"][:, None]
    noisy["mfcc"][~real_frames] = 50.0
    noisy["input_ids"][batch["attention_mask"] == 0] = 29
    clean, dirty = (model({k: jnp.asarray(v) for k, v in b.items()}) for b in (batch, noisy))
    np.testing.assert_allclose(np.asarray(dirty["logits"]), np.asarray(clean["logits"]), atol=1e-6)
