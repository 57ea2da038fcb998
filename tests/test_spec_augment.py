"""SpecAugment-style masking: bands and spans of the sizes asked for, within each utterance's real
frames, new every step, none in evaluation; and delta MFCCs as librosa computes them."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mer_jax.config import base_config
from mer_jax.data.features import MfccParams, mfcc
from mer_jax.layers.spec_augment import SpecAugment
from mer_jax.models.registry import build_model
from mer_jax.training.steps import SplitModel


def _masks(layer, frames, lengths, seed):
    nnx.reseed(layer, dropout=jax.random.key(seed))
    return np.asarray(layer(frames, lengths)) == 0


def _runs(row: np.ndarray) -> list[int]:
    """Lengths of the runs of True in a 1-d bool array."""
    edges = np.diff(np.concatenate([[0], row.astype(int), [0]]))
    return list(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1))


def test_time_spans_and_frequency_bands_have_the_asked_sizes_and_stay_in_the_real_frames():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 60, 256)
    frames = jnp.ones((256, 60, 40))
    time_only = SpecAugment(freq_masks=0, freq_width=8, time_masks=2, time_width=10, rngs=nnx.Rngs(dropout=0))
    masked = _masks(time_only, frames, jnp.asarray(lengths), 1)
    assert (masked == masked[:, :, :1]).all()  # a time span covers every coefficient
    widths = []
    for row, length in zip(masked[:, :, 0], lengths):
        assert not row[length:].any()  # never past the utterance's end
        assert len(_runs(row)) <= 2 and row.sum() <= 20  # two spans of at most 10 (touching ones merge)
        widths.append(row.sum())
    assert 5 < np.mean(widths) < 10  # two spans of 0..10 frames each (mean 5 each, less overlaps and short rows)
    bands = SpecAugment(freq_masks=1, freq_width=8, time_masks=0, time_width=40, rngs=nnx.Rngs(dropout=0))
    masked = _masks(bands, frames, jnp.asarray(lengths), 2)
    assert (masked == masked[:, :1, :]).all()  # a band covers every frame
    band = masked[:, 0, :]
    assert all(len(_runs(row)) <= 1 and row.sum() <= 8 for row in band)
    assert abs(band.sum(1).mean() - 4.0) < 0.6  # widths uniform on 0..8


def test_new_masks_every_step_and_none_in_evaluation():
    layer = SpecAugment(freq_masks=2, freq_width=8, time_masks=2, time_width=20, rngs=nnx.Rngs(dropout=0))
    frames, lengths = jnp.asarray(np.random.default_rng(1).normal(size=(8, 50, 40)), jnp.float32), jnp.full(8, 50)
    first, second, again = (_masks(layer, frames, lengths, seed) for seed in (0, 1, 0))
    assert (first != second).any() and np.array_equal(first, again)
    out = np.asarray(layer(frames, lengths))
    assert np.array_equal(out[out != 0], np.asarray(frames)[out != 0])  # what is not masked is untouched
    layer.eval()
    assert np.array_equal(np.asarray(layer(frames, lengths)), np.asarray(frames))


def test_a_model_with_masking_predicts_like_one_without_in_evaluation():
    def model(**augment):
        c = base_config()
        c.model.update(d_model=16, num_heads=2, modalities="audio")
        c.augment.update(augment)
        return SplitModel.of(build_model(c, {"num_classes": 4}))

    plain, masked = model(), model(freq_masks=2, time_masks=2)
    batch = {"mfcc": np.random.default_rng(2).normal(size=(4, 30, 40)).astype(np.float32),
             "mfcc_length": np.array([30, 12, 5, 21], np.int32)}
    np.testing.assert_array_equal(plain.outputs(plain.params, plain.other, batch)["logits"],
                                  masked.outputs(plain.params, plain.other, batch)["logits"])
    trained = [masked.apply(plain.params, plain.other, batch, jax.random.key(0))[0]["logits"],
               plain.apply(plain.params, plain.other, batch, jax.random.key(0))[0]["logits"]]
    assert float(jnp.abs(trained[0] - trained[1]).max()) > 1e-4  # in training the masks change the output


def test_delta_features_are_librosas():
    import librosa

    wave = np.sin(np.linspace(0, 300, 16000)).astype(np.float32) * np.linspace(0, 1, 16000, dtype=np.float32)
    plain, with_deltas = (mfcc(wave, MfccParams(deltas=d)) for d in (0, 2))
    reference = librosa.feature.mfcc(y=wave, sr=16000, n_mfcc=40, n_fft=512, win_length=400, hop_length=160, n_mels=64)
    expected = np.concatenate([reference, librosa.feature.delta(reference, mode="nearest"),
                               librosa.feature.delta(reference, order=2, mode="nearest")]).T[:300]
    assert with_deltas.shape == (len(plain), 120)
    np.testing.assert_allclose(with_deltas, expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(with_deltas[:, :40], plain)
