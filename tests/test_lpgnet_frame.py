"""LPGNet (Frame): token and frame sequences of unequal real lengths, each with its own mask, against
the PyTorch reference; padding to `length` never changes a prediction; truncation keeps the first
`length` frames. (tests/test_tables.py trains it from the command line, as a row of Table 2.)"""

import numpy as np
import pytest
import torch
from flax import nnx
from lpgnet_reference import LPGNetReference, load_flax
from test_lpgnet import AUDIO_DIM, CLASSES, HIDDEN, TEXT_DIM, VARIANTS, make_model, run

from mer_jax.config import base_config
from mer_jax.models.registry import build_model


class Positions(nnx.Module):
    """LPGNet.positions with one mask per modality, as LPGNet (Frame) calls it."""

    def __init__(self, model):
        self.model = model

    def __call__(self, batch):
        return self.model.positions({"text": batch["text"], "audio": batch["audio"]},
                                    {"text": batch["text_mask"], "audio": batch["audio_mask"]})


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v in ("full", "no_gates", "no_inter", "no_ffn")])
def test_positions_with_a_mask_per_modality_match_the_reference(variant):
    rng = np.random.default_rng(0)
    positions = 7
    text_lengths, audio_lengths = np.array([7, 2, 1, 5]), np.array([3, 7, 4, 1])  # every utterance has both
    batch = {"text": rng.normal(size=(4, positions, TEXT_DIM)).astype(np.float32),
             "audio": rng.normal(size=(4, positions, AUDIO_DIM)).astype(np.float32),
             "text_mask": (np.arange(positions) < text_lengths[:, None]).astype(np.float32),
             "audio_mask": (np.arange(positions) < audio_lengths[:, None]).astype(np.float32)}
    model = Positions(make_model(**VARIANTS[variant]))
    reference = load_flax(LPGNetReference(CLASSES, TEXT_DIM, AUDIO_DIM, HIDDEN, **VARIANTS[variant]), model.model)
    real = (batch["text_mask"] + batch["audio_mask"]) > 0
    for mode in ("train", "eval"):
        getattr(model, mode)()
        getattr(reference, mode)()
        ours = run(model, batch)
        with torch.no_grad():
            theirs = reference(*(torch.tensor(batch[k]) for k in ("text", "audio", "text_mask", "audio_mask")))
        for name in ours:
            np.testing.assert_allclose(ours[name][real], theirs[name].numpy()[real], atol=1e-5)


def _frame_model(length, **model):
    c = base_config("lpgnet_frame")
    c.text.encoder, c.text.hidden, c.text.layers, c.text.heads = "transformer", 16, 1, 2
    c.features.max_tokens, c.features.max_frames = 9, 12
    c.model.hidden, c.model.dropout, c.model.length = 16, 0.0, length
    c.model.update(model)
    return build_model(c, {"num_classes": CLASSES, "vocab_size": 30}, seed=3)


def _tokens_and_frames(rng, token_lengths, frame_lengths, max_tokens=9, max_frames=12):
    token_lengths, frame_lengths = np.array(token_lengths), np.array(frame_lengths)
    attention_mask = (np.arange(max_tokens) < token_lengths[:, None]).astype(np.int32)
    return {"input_ids": rng.integers(1, 30, (len(token_lengths), max_tokens)).astype(np.int32) * attention_mask,
            "attention_mask": attention_mask,
            "mfcc": rng.normal(size=(len(frame_lengths), max_frames, 40)).astype(np.float32)
            * (np.arange(max_frames) < frame_lengths[:, None])[..., None],
            "mfcc_length": frame_lengths.astype(np.int32)}


def test_padding_to_a_longer_length_changes_no_prediction():
    batch = _tokens_and_frames(np.random.default_rng(1), [9, 4, 2], [12, 5, 8])
    for mode in ("train", "eval"):
        a, b = _frame_model(12), _frame_model(40)
        getattr(a, mode)()
        getattr(b, mode)()
        ours, longer = run(a, batch), run(b, batch)
        assert set(ours) == {"logits", "text_logits", "audio_logits"} and ours["logits"].shape == (3, CLASSES)
        for name in ours:
            np.testing.assert_allclose(ours[name], longer[name], atol=1e-5)


def test_truncation_keeps_the_first_length_frames():
    batch = _tokens_and_frames(np.random.default_rng(2), [9, 3], [12, 4])
    short, long = _frame_model(5, modalities="audio"), _frame_model(12, modalities="audio")
    short.eval()
    long.eval()
    cut = dict(batch, mfcc=batch["mfcc"] * (np.arange(12) < 5)[None, :, None],
               mfcc_length=np.minimum(batch["mfcc_length"], 5))
    np.testing.assert_allclose(run(short, batch)["logits"], run(long, cut)["logits"], atol=1e-5)
    assert not np.allclose(run(long, batch)["logits"][0], run(long, cut)["logits"][0], atol=1e-3)
